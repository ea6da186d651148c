"""The object mover: on an object-store root every move is a copy, a verified copy, then a delete.

For each batch (its intents already durable, tasks.apply.engine): copy every source that is
still the object the scan saw to its new key without ever overwriting
(ObjectStore.copy_if_absent verifies the copy), journal the copies' ETags, delete each source
only if it is still that object, journal the outcomes. A crash between the copy and the
delete leaves both keys; resuming (or a rollback) decides each unfinished item from the real
objects (`reconcile`), so nothing is lost and no copy is left beside its source. Rollback
runs the same steps the other way (its items' ETag is the copy apply made).

A duplicate is quarantined only while its kept copy is still the object the plan kept (as on a
folder root): the same ETag and size at its scanned key, or, where this apply moved it, at its
final key the same size and ETag or (a copy may carry another ETag: multipart, SSE-KMS) the
content digest the plan found; otherwise it stays, so the only copy never ends up hidden.

The items of a batch run concurrently, each one's steps in order: the plan never moves a key
onto a key that existed at scan time, so no item waits for another.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NamedTuple

import pyarrow as pa
from botocore.exceptions import BotoCoreError

from storage.errors import StorageError
from storage.journal import Entry, Journal
from storage.locations import DataStore
from storage.objects import (
    CopyMismatch,
    ObjectChanged,
    ObjectExists,
    ObjectInfo,
    ObjectStore,
    describe,
    error_code,
)
from storage.queries import connect, plan_source, source
from tasks.apply.engine import Outcome, raise_first
from tasks.apply.items import BATCH, Item, count_key

THREADS = 16  # items in flight per shard: each waits on the store, not on the CPU


class Outage(StorageError):
    """The store did not answer at all: the task fails, and its retry resumes the work."""


def bucket_plan_rows(store: DataStore, op_dir: str, shard: int) -> list[dict[str, Any]]:
    """The rows of one plan shard, each with the ETag its source had when it was scanned."""
    rows: list[dict[str, Any]] = bucket_plan_table(store, op_dir, shard).to_pylist()
    return rows


def bucket_plan_table(store: DataStore, op_dir: str, shard: int) -> pa.Table:
    """One plan shard with the ETag each source had when it was scanned."""
    plan = store.duckdb_path(f"{op_dir}/plan/part-{shard:05d}.parquet").replace("'", "''")
    sql = f"""
        SELECT p.*, s.etag
        FROM read_parquet('{plan}', file_row_number = true) p
        LEFT JOIN {source(store, op_dir, "scan")} s
          ON s.path = p.src AND s.ino = p.ino AND s.kind = 'file'
        ORDER BY p.file_row_number
    """
    with connect(store) as con:
        return con.sql(sql).to_arrow_table()


_BUCKET_KEPT: dict[str, dict[bytes, Entry]] = {}  # the last plan's: shards never change


def bucket_kept_copies(store: DataStore, op_dir: str) -> dict[bytes, Entry]:
    """Quarantined key -> its kept copy (the plan's `twin`): the ETag the scan saw, its size
    and content digest, its keys before and after the apply. Read once per plan; a plan from
    before `twin` has none: not checked."""
    found = _BUCKET_KEPT.get(op_dir)
    if found is not None:
        return found
    plan = plan_source(store, op_dir)
    sql = f"""
        SELECT q.src, k.src AS scanned, CASE WHEN k.action = 'move' THEN k.dst ELSE k.src END
               AS final, k.size, k.digest, s.etag
        FROM {plan} q
        JOIN {plan} k ON k.src = q.twin AND k.action IN ('move', 'keep')
        LEFT JOIN {source(store, op_dir, "scan")} s
          ON s.path = k.src AND s.ino = k.ino AND s.kind = 'file'
        WHERE q.action = 'quarantine'
    """
    with connect(store) as con:
        rows = con.sql(sql).fetchall()
    found = {
        src: {"etag": etag, "size": size, "digest": digest, "paths": (scanned, final)}
        for src, scanned, final, size, digest, etag in rows
    }
    _BUCKET_KEPT.clear()
    _BUCKET_KEPT[op_dir] = found
    return found


def kept_intact(objects: ObjectStore, kept: Entry) -> bool:
    """Whether a quarantine's kept copy is still the object the plan kept (module docstring)."""
    scanned, final = kept["paths"]
    info = objects.head(_key(objects, scanned))
    if info is not None and kept["etag"] and (info.etag, info.size) == (kept["etag"], kept["size"]):
        return True
    info = objects.head(_key(objects, final)) if final != scanned else None
    if info is None or info.size != kept["size"]:
        return False
    if kept["etag"] and info.etag == kept["etag"]:
        return True
    try:
        return kept["digest"] is not None and objects.content_hash(info.key) == kept["digest"]
    except ObjectChanged:
        return False


class ObjectMover(NamedTuple):
    """Moves under an object-store root, a pool of requests per journal run."""

    objects: ObjectStore

    @contextmanager
    def session(self, latest: dict[str, Entry]) -> Iterator[ObjectSession]:
        with ThreadPoolExecutor(_threads(self.objects)) as pool:
            yield ObjectSession(self.objects, pool)


class ObjectSession(NamedTuple):
    objects: ObjectStore
    pool: ThreadPoolExecutor
    batch: int = BATCH  # a segment object or two per batch; its items run concurrently

    def settle(self, pending: Sequence[tuple[Item, Entry]]) -> list[Outcome]:
        latest = {item.seq: entry for item, entry in pending}
        items = [item for item, _ in pending]
        return _each(self.pool, lambda i: reconcile(self.objects, i, latest[i.seq]), items)

    def noted(self, item: Item, entry: Entry) -> None:
        pass

    def announce(self, batch: Sequence[Item], journal: Journal) -> None:
        for item in batch:
            journal.add_line(item.intent_line())

    def carry_out(self, batch: Sequence[Item], journal: Journal) -> Counter[str]:
        objects, pool = self.objects, self.pool
        counts: Counter[str] = Counter()
        copies = _each(pool, lambda i: copy_step(objects, i), batch)
        copy_etags: dict[str, str] = {}
        for result in copies:
            if isinstance(result, dict):
                journal.add(result)
                if result["phase"] == "copied":
                    copy_etags[result["seq"]] = str(result["etag"])
                else:
                    counts[count_key(result)] += 1
        # The copies' ETags are durable before any source goes: after a crash they tell our
        # copy from an object somebody else wrote meanwhile without reading either.
        journal.sync()
        raise_first(copies)
        copied = [i for i in batch if i.seq in copy_etags]
        deletes = _each(pool, lambda i: delete_step(objects, i, copy_etags[i.seq]), copied)
        for result in deletes:
            if isinstance(result, dict):
                journal.add(result)
                counts[count_key(result)] += 1
        journal.sync()
        raise_first(deletes)
        return counts


def _threads(objects: ObjectStore) -> int:
    return max(1, min(objects.profile.concurrency, THREADS))


def _each(
    pool: ThreadPoolExecutor, fn: Callable[[Item], Entry | None], items: Sequence[Item]
) -> list[Outcome]:
    """fn over items on the pool. A store error is that item's error (see _store_error); an
    outage is returned, to be raised once the outcomes of the other items are journaled."""

    def guarded(item: Item) -> Outcome:
        try:
            return fn(item)
        except Exception as exc:
            try:
                return _store_error(item, exc)
            except Exception as fatal:
                return fatal

    return list(pool.map(guarded, items))


def _store_error(item: Item, exc: Exception) -> Entry:
    """The store answered with an error (access denied, throttling after every retry...):
    this item's error, noted beside it (its own phase stays unfinished, so the next run or a
    rollback finds out from the objects what became of it), while the others go on. No
    answer at all fails the whole task: its retry resumes."""
    if error_code(exc) is None:
        if isinstance(exc, BotoCoreError | OSError | TimeoutError):
            raise Outage(describe(exc, "object store unreachable")) from exc
        raise exc
    what = f"{os.fsdecode(item.src)} -> {os.fsdecode(item.dst)}"
    return {"seq": f"error:{item.seq}", "phase": "error", "reason": describe(exc, what)}


def _key(objects: ObjectStore, rel: bytes) -> str:
    parts = rel.split(b"/")
    if not rel or any(p in (b"", b".", b"..") for p in parts):
        raise ValueError(f"unsafe key {rel!r}")
    return objects.root.key(rel)


def _outcome(item: Item, phase: str, reason: str) -> Entry:
    return {"seq": item.seq, "phase": phase, "reason": reason}


def copy_step(objects: ObjectStore, item: Item) -> Entry:
    """Copy the source, if it is still the object the plan saw, to a key nobody holds."""
    try:
        src_key, dst_key = _key(objects, item.src), _key(objects, item.dst)
    except (ValueError, UnicodeDecodeError):
        return _outcome(item, "skipped", "unsafe path: not a valid key")
    if not item.etag:
        return _outcome(item, "skipped", f"changed since {item.since}: no ETag recorded")
    if (
        item.action == "quarantine"
        and item.meta is not None
        and not kept_intact(objects, item.meta)
    ):
        return _outcome(
            item, "skipped", "the kept copy changed or vanished since scan: not quarantined"
        )
    size, mtime_ns = item.identity.size, item.identity.mtime_ns
    try:
        copy = objects.copy_if_absent(ObjectInfo(src_key, size, item.etag, mtime_ns), dst_key)
    except ObjectExists:
        return _outcome(item, "skipped", "conflict: destination exists")
    except ObjectChanged:
        gone = objects.head(src_key) is None
        return _outcome(item, "skipped", f"{'vanished' if gone else 'changed'} since {item.since}")
    except CopyMismatch:
        return _outcome(item, "skipped", "changed while copying")
    return {"seq": item.seq, "phase": "copied", "etag": copy.etag, "size": copy.size}


def delete_step(objects: ObjectStore, item: Item, copy_etag: str, recovered: bool = False) -> Entry:
    """Delete the source of a verified copy, only if it is still the object that was copied."""
    src_key, dst_key = objects.root.key(item.src), objects.root.key(item.dst)
    done: Entry = {"seq": item.seq, "phase": "done", "method": "copy", "etag": copy_etag}
    if recovered:
        done["recovered"] = True
    try:
        objects.delete_if_match(src_key, item.etag)
    except ObjectChanged:
        if objects.head(src_key) is None:
            return done  # deleted by somebody else meanwhile: our copy is the object now
        # Rewritten after we copied it: the new content stays where it is, our copy of the
        # old one goes (unless that key was rewritten too: then it is not ours to delete).
        with contextlib.suppress(ObjectChanged):
            objects.delete_if_match(dst_key, copy_etag)
        return _outcome(item, "skipped", f"changed since {item.since}")
    return done


def reconcile(objects: ObjectStore, item: Item, latest: Entry) -> Entry | None:
    """An item a crash interrupted: its outcome as the objects show it, or None to redo it."""
    try:
        src_key, dst_key = _key(objects, item.src), _key(objects, item.dst)
    except (ValueError, UnicodeDecodeError):
        return None  # the redo skips it and says why
    src, dst = objects.head(src_key), objects.head(dst_key)
    if dst is None:
        if src is None:
            return _outcome(item, "failed", "source and destination are both gone")
        return None  # not carried out: redo (it re-checks the source)
    intact = src is not None and src.etag == item.etag and src.size == item.identity.size
    ours = latest["phase"] == "copied" and dst.etag == latest.get("etag")
    if src is None:
        if ours or dst.size == item.identity.size:
            return _recovered_done(item, dst)
        return _outcome(item, "skipped", f"vanished since {item.since}")
    if not ours and intact and dst.size == item.identity.size:
        ours = _same_content(objects, src, dst)  # a copy made but not yet journaled
    if ours and intact:
        return delete_step(objects, item, dst.etag, recovered=True)
    if ours:  # the source was rewritten after our copy: ours goes, theirs stays
        with contextlib.suppress(ObjectChanged):
            objects.delete_if_match(dst_key, dst.etag)
        return _outcome(item, "skipped", f"changed since {item.since}")
    if intact:
        return _outcome(item, "skipped", "conflict: destination exists")
    return _outcome(item, "skipped", f"changed since {item.since}")


def _recovered_done(item: Item, dst: ObjectInfo) -> Entry:
    return {"seq": item.seq, "phase": "done", "method": "copy", "etag": dst.etag, "recovered": True}


def _same_content(objects: ObjectStore, a: ObjectInfo, b: ObjectInfo) -> bool:
    try:
        return objects.content_hash(a.key, a.etag) == objects.content_hash(b.key, b.etag)
    except ObjectChanged:
        return False
