"""Apply on an object-store root: every move is a copy, a verified copy, then a delete.

For each batch: journal the intents (durable before acting), copy every source that is still
the object the scan saw to its new key without ever overwriting (ObjectStore.copy_if_absent
verifies the copy), journal the copies' ETags, delete each source only if it is still that
object, journal the outcomes. A crash between the copy and the delete leaves both keys;
resuming (or a rollback) decides each unfinished item from the real objects (`reconcile`),
so nothing is lost and no copy is left beside its source.

Rollback (tasks.object_rollback) runs the same machinery the other way.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError

from storage.errors import StorageError
from storage.journal import Entry, Journal, encode_path, item_seq, last_phase, read_journal
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
from storage.queries import connect, source
from tasks.apply import BATCH, MOVING, UNFINISHED, _count_key

THREADS = 16  # items in flight per shard: each waits on the store, not on the CPU


@dataclass(frozen=True, slots=True)
class ObjectMove:
    """One key to move: apply's move or quarantine, or rollback's way back ("undo")."""

    seq: str
    action: str  # move | quarantine | undo
    src: bytes  # relative to the root, UTF-8
    dst: bytes
    size: int
    etag: str  # the source as scanned (apply), the copy apply made (undo)
    mtime_ns: int = 0
    ino: int = 0

    @property
    def since(self) -> str:
        return "apply" if self.action == "undo" else "scan"

    def intent(self) -> Entry:
        return {
            "seq": self.seq,
            "phase": "intent",
            "action": self.action,
            "src": encode_path(self.src),
            "dst": encode_path(self.dst),
            "dev": 0,
            "ino": self.ino,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "etag": self.etag,
        }


class Outage(StorageError):
    """The store did not answer at all: the task fails, and its retry resumes the work."""


def items_from_plan(store: DataStore, op_dir: str, shard: int) -> list[ObjectMove]:
    """The moves of one plan shard, with the ETag each source had when it was scanned."""
    plan = store.duckdb_path(f"{op_dir}/plan/part-{shard:05d}.parquet").replace("'", "''")
    sql = f"""
        SELECT p.file_row_number AS idx, p.action, p.src, p.dst, p.size, p.mtime_ns, p.ino,
               s.etag
        FROM read_parquet('{plan}', file_row_number = true) p
        LEFT JOIN {source(store, op_dir, "scan")} s
          ON s.path = p.src AND s.ino = p.ino AND s.kind = 'file'
        WHERE p.action IN {MOVING!r}
        ORDER BY idx
    """
    with connect(store) as con:
        rows = con.sql(sql).fetchall()
    return [
        ObjectMove(item_seq("move", shard, idx), action, src, dst, size, etag or "", mtime_ns, ino)
        for idx, action, src, dst, size, mtime_ns, ino, etag in rows
    ]


def move_items(
    objects: ObjectStore,
    items: Sequence[ObjectMove],
    journal_path: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
    retry_skipped: bool = False,
) -> Counter[str]:
    """Carry out `items` batch by batch, journaled; safe to call again after any interruption.
    With `retry_skipped` (rollback), items refused last time are tried again.

    The items of a batch run concurrently, each one's steps in order: the plan never moves a
    key onto a key that existed at scan time, so no item waits for another."""
    latest = last_phase(read_journal(journal_path))
    counts: Counter[str] = Counter()
    todo: list[ObjectMove] = []
    with Journal(journal_path) as journal, ThreadPoolExecutor(_threads(objects)) as pool:
        unfinished = [i for i in items if latest.get(i.seq, {}).get("phase") in UNFINISHED]
        results = _each(pool, lambda i: reconcile(objects, i, latest[i.seq]), unfinished)
        for outcome in results:
            if isinstance(outcome, dict):
                journal.add(outcome)
        journal.sync()
        _raise_first(results)
        settled: dict[str, Entry | None] = {
            i.seq: r
            for i, r in zip(unfinished, results, strict=True)
            if not isinstance(r, BaseException)
        }
        for item in items:
            entry = settled[item.seq] if item.seq in settled else latest.get(item.seq)
            if entry is not None and retry_skipped and entry["phase"] in ("skipped", "failed"):
                entry = None
            if entry is None:
                todo.append(item)  # not carried out yet, or to redo
            else:
                counts[count_key(entry)] += 1
        for start in range(0, len(todo), BATCH):
            batch_counts = _apply_batch(objects, todo[start : start + BATCH], journal, pool)
            counts.update(batch_counts)
            on_batch(batch_counts)
    return counts


def _threads(objects: ObjectStore) -> int:
    return max(1, min(objects.profile.concurrency, THREADS))


def _apply_batch(
    objects: ObjectStore, batch: list[ObjectMove], journal: Journal, pool: ThreadPoolExecutor
) -> Counter[str]:
    for item in batch:
        journal.add(item.intent())
    journal.sync()
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
    _raise_first(copies)
    copied = [i for i in batch if i.seq in copy_etags]
    deletes = _each(pool, lambda i: delete_step(objects, i, copy_etags[i.seq]), copied)
    for result in deletes:
        if isinstance(result, dict):
            journal.add(result)
            counts[count_key(result)] += 1
    journal.sync()
    _raise_first(deletes)
    return counts


def _each(
    pool: ThreadPoolExecutor,
    fn: Callable[[ObjectMove], Entry | None],
    items: Sequence[ObjectMove],
) -> list[Entry | BaseException | None]:
    """fn over items on the pool. A store error is that item's error (see _store_error);
    an outage is raised once the outcomes of the other items are journaled."""

    def guarded(item: ObjectMove) -> Entry | BaseException | None:
        try:
            return fn(item)
        except Exception as exc:
            try:
                return _store_error(item, exc)
            except Exception as fatal:
                return fatal

    return list(pool.map(guarded, items))


def _raise_first(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _store_error(item: ObjectMove, exc: Exception) -> Entry:
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


def count_key(entry: Entry) -> str:
    return "errors" if entry["phase"] == "error" else _count_key(entry)


def _key(objects: ObjectStore, rel: bytes) -> str:
    parts = rel.split(b"/")
    if not rel or any(p in (b"", b".", b"..") for p in parts):
        raise ValueError(f"unsafe key {rel!r}")
    return objects.root.key(rel)


def _outcome(item: ObjectMove, phase: str, reason: str) -> Entry:
    return {"seq": item.seq, "phase": phase, "reason": reason}


def copy_step(objects: ObjectStore, item: ObjectMove) -> Entry:
    """Copy the source, if it is still the object the plan saw, to a key nobody holds."""
    try:
        src_key, dst_key = _key(objects, item.src), _key(objects, item.dst)
    except (ValueError, UnicodeDecodeError):
        return _outcome(item, "skipped", "unsafe path: not a valid key")
    if not item.etag:
        return _outcome(item, "skipped", f"changed since {item.since}: no ETag recorded")
    try:
        copy = objects.copy_if_absent(
            ObjectInfo(src_key, item.size, item.etag, item.mtime_ns), dst_key
        )
    except ObjectExists:
        return _outcome(item, "skipped", "conflict: destination exists")
    except ObjectChanged:
        gone = objects.head(src_key) is None
        return _outcome(item, "skipped", f"{'vanished' if gone else 'changed'} since {item.since}")
    except CopyMismatch:
        return _outcome(item, "skipped", "changed while copying")
    return {"seq": item.seq, "phase": "copied", "etag": copy.etag, "size": copy.size}


def delete_step(
    objects: ObjectStore, item: ObjectMove, copy_etag: str, recovered: bool = False
) -> Entry:
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


def reconcile(objects: ObjectStore, item: ObjectMove, latest: Entry) -> Entry | None:
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
    intact = src is not None and src.etag == item.etag and src.size == item.size
    ours = latest["phase"] == "copied" and dst.etag == latest.get("etag")
    if src is None:
        if ours or dst.size == item.size:
            return _recovered_done(item, dst)
        return _outcome(item, "skipped", f"vanished since {item.since}")
    if not ours and intact and dst.size == item.size:
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


def _recovered_done(item: ObjectMove, dst: ObjectInfo) -> Entry:
    return {"seq": item.seq, "phase": "done", "method": "copy", "etag": dst.etag, "recovered": True}


def _same_content(objects: ObjectStore, a: ObjectInfo, b: ObjectInfo) -> bool:
    try:
        return objects.content_hash(a.key, a.etag) == objects.content_hash(b.key, b.etag)
    except ObjectChanged:
        return False


def apply_object_shard(
    store: DataStore,
    objects: ObjectStore,
    shard: int,
    op_dir: str,
    journal_path: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
) -> Counter[str]:
    items = items_from_plan(store, op_dir, shard)
    if not items:
        return Counter()
    return move_items(objects, items, journal_path, on_batch)
