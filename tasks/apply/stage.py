"""The apply stage's entry: apply and roll back an operation, shard by shard, over its plan.

Each function is handed the root's apply backend, which the root backend chose once per
operation (tasks.backends: `backend_for(url).apply()`): a local folder (LocalApply: files
move, duplicates become hard links, folders are made, emptied and given their times back) or
an object-store prefix, `s3://bucket/prefix` (BucketApply: objects only move; no hard links,
no folders). Either hands its mover to the one engine (tasks.apply.engine) and the one
rollback (tasks.apply.rollback); nothing here asks what kind of root it has. Journals live
in the data folder (storage.journal names them): files on local disk, segment objects when
the data folder is in an object store.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from storage import collector, journal_moves, manifests
from storage.journal import (
    PHASES,
    Entry,
    applied_journals,
    apply_journal,
    journal_dir,
    read_journal,
    rollback_journal,
)
from storage.locations import DataStore
from storage.objects import ObjectStore, parse_object_url
from storage.queries import connect
from tasks import links
from tasks.apply import dirs, engine, rollback
from tasks.apply.engine import Mover
from tasks.apply.fsops import Identity
from tasks.apply.items import ITEM_COLUMNS, MOVING, items_from_columns
from tasks.apply.local import LocalMover
from tasks.apply.local_recovery import sweep_copies
from tasks.apply.objects import ObjectMover, bucket_kept_copies, bucket_plan_table


class ApplyBackend(Protocol):
    """What apply and rollback need of a root, beyond its mover."""

    @property
    def phases(self) -> tuple[str, ...]: ...

    def mover(self) -> Mover: ...

    def plan_columns(self, store: DataStore, op_dir: str, shard: int) -> dict[str, list[Any]]:
        """One plan shard's columns an Item is made of, a list each."""
        ...

    def kept(self, store: DataStore, op_dir: str, phase: str) -> dict[bytes, Identity]: ...

    def twins(self, store: DataStore, op_dir: str) -> dict[bytes, Entry]:
        """The kept copy of each quarantined path, to check before quarantining it (its
        identity for files, its ETag, size and digest for objects)."""
        ...

    def debris(self, journal: str, entries: list[Entry]) -> int:
        """After a journal's rollback: what apply left that keeps it from being complete
        (`entries`: that journal, as the rollback read it)."""
        ...

    def remove_emptied(self, store: DataStore, op_dir: str) -> int: ...

    def recreate_folders(self, store: DataStore, op_dir: str) -> tuple[int, list[dirs.Kept]]: ...

    def tidy_dirs(self, store: DataStore, op_dir: str) -> tuple[int, list[dirs.Kept]]: ...


def plan_shards(store: DataStore, op_dir: str) -> int:
    return len(manifests.shard_paths(store, op_dir, "plan"))


def apply_shard(
    store: DataStore,
    op_dir: str,
    where: ApplyBackend,
    phase: str,
    shard: int,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
) -> Counter[str]:
    if phase not in where.phases:
        return Counter()  # objects cannot be hard-linked: the plan has no such rows
    columns = where.plan_columns(store, op_dir, shard)
    wanted = MOVING if phase == "move" else ("hardlink",)
    if not any(action in wanted for action in columns["action"]):
        return Counter()  # before reading the kept copies of every shard
    kept = where.kept(store, op_dir, phase)
    quarantines = phase == "move" and "quarantine" in columns["action"]
    twins = where.twins(store, op_dir) if quarantines else {}
    with collector.paused():  # 20,000 items, no cycle among them
        items = items_from_columns(columns, phase, shard, kept, twins)
    journal = apply_journal(store, op_dir, phase, shard)
    journal_moves.discard_leftover(journal)  # a killed seal's temporary, of no use
    return engine.carry_out(where.mover(), items, journal, on_batch)


def rollback_one(
    store: DataStore,
    op_dir: str,
    where: ApplyBackend,
    journal: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
) -> Counter[str]:
    target = rollback_journal(store, op_dir, journal)
    journal_moves.discard_leftover(journal)  # a killed seal's temporary, of no use
    sealed = rollback.sealed_undo(journal)
    if sealed is not None:  # every item renamed: nothing to settle, no copy left to sweep
        return engine.carry_out(where.mover(), sealed, target, on_batch, retry_skipped=True)
    entries = read_journal(journal)  # once: a journal of 200,000 moves takes seconds to read
    counts = rollback.rollback_journal(where.mover(), journal, target, on_batch, entries)
    left = where.debris(journal, entries)
    if left:
        counts["debris"] += left  # a partial copy that could not be removed: not complete
    return counts


def remove_emptied(store: DataStore, op_dir: str, where: ApplyBackend) -> int:
    """After every move: remove the folders the moves emptied. Returns how many."""
    return where.remove_emptied(store, op_dir)


def recreate_folders(
    store: DataStore, op_dir: str, where: ApplyBackend
) -> tuple[int, list[dirs.Kept]]:
    """Rollback, first: the folders apply removed, back with their mode. Returns (how many
    were made, the ones that could not be, with why: something else has their name now)."""
    return where.recreate_folders(store, op_dir)


def tidy_dirs(store: DataStore, op_dir: str, where: ApplyBackend) -> tuple[int, list[dirs.Kept]]:
    """After a rollback: remove the folders apply made, now empty, and give the others (the
    ones it removed and made again included) back their times. Returns (how many folders were
    removed, the ones apply made that stay, with why). Object stores have no folders."""
    return where.tidy_dirs(store, op_dir)


def rmdir_journal(store: DataStore, op_dir: str) -> str:
    """The journal of the folders apply emptied and removed (tasks.apply.dirs)."""
    return f"{journal_dir(store, op_dir)}/apply/{dirs.RMDIR}-00000.jsonl"


def columns_of(table: pa.Table) -> dict[str, list[Any]]:
    return {name: table.column(name).to_pylist() for name in table.column_names}


def kept_identities(store: DataStore, op_dir: str) -> dict[bytes, Identity]:
    """Final path -> identity of every file that stays or moves: the targets of hard links."""
    kept: dict[bytes, Identity] = {}
    for path in manifests.shard_paths(store, op_dir, "plan"):
        for row in manifests.read_table(store, path).to_pylist():
            if row["action"] in ("move", "keep") and row.get("kind") != "dir":
                final = row["dst"] if row["action"] == "move" else row["src"]
                kept[final] = Identity(row["dev"], row["ino"], row["size"], row["mtime_ns"])
    return kept


_KEPT_COPIES: dict[str, dict[bytes, Entry]] = {}  # the last plan's: shards never change


def kept_copies(store: DataStore, op_dir: str) -> dict[bytes, Entry]:
    """Quarantined path -> its kept copy (the plan's `twin`): its identity as scanned and its
    paths before and after the apply. Plans from before `twin` have none: not checked. Read
    once per plan (each shard with quarantines asks), keeping only the quarantines' rows."""
    found = _KEPT_COPIES.get(op_dir)
    if found is not None:
        return found
    paths = manifests.shard_paths(store, op_dir, "plan")
    twins: dict[bytes, bytes] = {}
    for path in paths:
        table = manifests.read_table(store, path)
        if "twin" not in table.column_names:
            return {}
        rows = table.filter(pc.equal(table["action"], "quarantine"))
        twins.update(zip(rows["src"].to_pylist(), rows["twin"].to_pylist(), strict=True))
    wanted = pa.array([t for t in set(twins.values()) if t is not None], pa.binary())
    kept: dict[bytes, tuple[Identity, bytes]] = {}
    for path in paths:
        table = manifests.read_table(store, path)
        for row in table.filter(pc.is_in(table["src"], value_set=wanted)).to_pylist():
            final = row["dst"] if row["action"] == "move" else row["src"]
            identity = Identity(row["dev"], row["ino"], row["size"], row["mtime_ns"])
            kept[row["src"]] = (identity, final)
    found = {}
    for src, twin in twins.items():
        if twin in kept:
            found[src] = {"kept": kept[twin][0], "paths": (twin, kept[twin][1])}
    _KEPT_COPIES.clear()
    _KEPT_COPIES[op_dir] = found
    return found


_KNOWN_FOLDERS = ("dirmeta", "mkdir")  # folders whose times an apply journal recorded


@dataclass(frozen=True)
class LocalApply:
    """A folder on this machine (a small frozen value: it crosses task runners whole)."""

    url: str
    phases: tuple[str, ...] = PHASES

    @property
    def root(self) -> bytes:
        return os.fsencode(self.url)

    def mover(self) -> Mover:
        return LocalMover(self.root)

    def plan_columns(self, store: DataStore, op_dir: str, shard: int) -> dict[str, list[Any]]:
        path = manifests.shard_path(op_dir, "plan", shard)
        # Only what an Item holds, a list per column: a dict per row costs per column, and a
        # shard has 20,000 rows.
        return columns_of(manifests.read_table(store, path, ITEM_COLUMNS))

    def kept(self, store: DataStore, op_dir: str, phase: str) -> dict[bytes, Identity]:
        return kept_identities(store, op_dir) if phase == "link" else {}

    def twins(self, store: DataStore, op_dir: str) -> dict[bytes, Entry]:
        return kept_copies(store, op_dir)

    def debris(self, journal: str, entries: list[Entry]) -> int:
        return sweep_copies(self.root, entries)

    def remove_emptied(self, store: DataStore, op_dir: str) -> int:
        candidates, known = emptied_candidates(applied_journals(store, op_dir))
        if not candidates:
            return 0
        # A folder a symlink in the root names stays, emptied or not: removed, the link would
        # dangle (its files could move: a link to a folder does not freeze what it holds).
        with connect(store) as con:
            named = links.named_entries(
                links.scanned_links(con, store, op_dir), links.root_paths(self.url)
            )
        candidates = {c for c in candidates if c not in named}
        return dirs.remove_emptied(self.root, candidates, rmdir_journal(store, op_dir), known)

    def recreate_folders(self, store: DataStore, op_dir: str) -> tuple[int, list[dirs.Kept]]:
        return dirs.recreate(self.root, rmdir_journal(store, op_dir))

    def tidy_dirs(self, store: DataStore, op_dir: str) -> tuple[int, list[dirs.Kept]]:
        journals = [*applied_journals(store, op_dir), rmdir_journal(store, op_dir)]
        # Each read once, and only its folders' lines: the moves' are most of it.
        entries = [read_journal(j, dirs.FOLDER_PHASES) for j in journals]
        made = [d for journal in entries for d in dirs.created_dirs(journal)]
        removed = dirs.remove_empty_dirs(self.root, made)
        dirs.restore_dir_times(self.root, entries)
        return removed


def emptied_candidates(journals: list[str]) -> tuple[set[bytes], set[str]]:
    """The folders the applies' moves may have emptied (the moved files' ancestors), and the
    folders whose times the journals recorded."""
    sources: list[bytes] = []
    known: set[str] = set()
    for journal in journals:
        # A sealed journal's moves are its moves file's (a marshal load), its folders' few
        # lines found without parsing the rest: parsing 200,000 moves' lines took seconds.
        rows = journal_moves.sealed_moves(journal)
        if rows is None:
            entries = read_journal(journal)
            sources += dirs.moved_sources(entries)
        else:
            entries = read_journal(journal, _KNOWN_FOLDERS)
            sources += [row[1] for row in rows]
        known.update(e["path"] for e in entries if e["phase"] in _KNOWN_FOLDERS)
    return dirs.ancestors(sources), known


@dataclass(frozen=True)
class BucketApply:
    """A prefix of a bucket; its store client is made when a mover is."""

    url: str
    phases: tuple[str, ...] = ("move",)  # objects cannot be hard-linked

    def mover(self) -> Mover:
        return ObjectMover(ObjectStore(parse_object_url(self.url)))

    def plan_columns(self, store: DataStore, op_dir: str, shard: int) -> dict[str, list[Any]]:
        return columns_of(bucket_plan_table(store, op_dir, shard))

    def kept(self, store: DataStore, op_dir: str, phase: str) -> dict[bytes, Identity]:
        return {}

    def twins(self, store: DataStore, op_dir: str) -> dict[bytes, Entry]:
        return bucket_kept_copies(store, op_dir)

    def debris(self, journal: str, entries: list[Entry]) -> int:
        return 0  # a copy is one request: it leaves no partial object behind

    def remove_emptied(self, store: DataStore, op_dir: str) -> int:
        return 0  # keys have no folders to empty

    def recreate_folders(self, store: DataStore, op_dir: str) -> tuple[int, list[dirs.Kept]]:
        return 0, []

    def tidy_dirs(self, store: DataStore, op_dir: str) -> tuple[int, list[dirs.Kept]]:
        return 0, []
