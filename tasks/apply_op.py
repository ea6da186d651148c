"""Apply and roll back a whole operation, shard by shard, over its plan and journals.

A local root is changed by tasks.apply and tasks.rollback, an object-store root
(`s3://bucket/prefix`) by tasks.object_apply and tasks.object_rollback: objects only move
(no hard links, no folders to tidy). Journals live in the data folder: files on local disk,
segment objects when the data folder is in an object store (their paths are then object URLs,
`profile://bucket/...`, which storage.journal reads and writes).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from storage import manifests

# The journal layout lives in storage.journal; its names stay importable from here.
from storage.journal import PHASES as PHASES
from storage.journal import applied_journals as applied_journals
from storage.journal import apply_journal as apply_journal
from storage.journal import has_applied_anything as has_applied_anything
from storage.journal import journal_dir as journal_dir
from storage.journal import read_journal, rollback_journal
from storage.locations import DataStore
from storage.objects import ObjectStore, is_object_url, parse_object_url
from tasks import apply, empty_dirs, object_apply, object_rollback, rollback
from tasks.fsops import Identity


def phases_for(root: str) -> tuple[str, ...]:
    """The phases apply runs on `root`: objects only move."""
    return ("move",) if is_object_url(root) else PHASES


def plan_shards(store: DataStore, op_dir: str) -> int:
    return len(manifests.shard_paths(store, op_dir, "plan"))


def _kept_identities(store: DataStore, op_dir: str) -> dict[bytes, Identity]:
    """Final path -> identity of every file that stays or moves: the targets of hard links."""
    kept: dict[bytes, Identity] = {}
    for path in manifests.shard_paths(store, op_dir, "plan"):
        for row in manifests.read_table(store, path).to_pylist():
            if row["action"] in ("move", "keep") and row.get("kind") != "dir":
                final = row["dst"] if row["action"] == "move" else row["src"]
                kept[final] = Identity(row["dev"], row["ino"], row["size"], row["mtime_ns"])
    return kept


def apply_shard(
    store: DataStore,
    op_dir: str,
    root: str,
    phase: str,
    shard: int,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
) -> Counter[str]:
    if is_object_url(root):
        if phase != "move":
            return Counter()  # objects cannot be hard-linked: the plan has no such rows
        return object_apply.apply_object_shard(
            store,
            ObjectStore(parse_object_url(root)),
            shard,
            op_dir,
            apply_journal(store, op_dir, phase, shard),
            on_batch,
        )
    rows = manifests.read_table(store, manifests.shard_path(op_dir, "plan", shard)).to_pylist()
    wanted = ("move", "quarantine") if phase == "move" else ("hardlink",)
    if not any(r["action"] in wanted for r in rows):
        return Counter()
    kept = _kept_identities(store, op_dir) if phase == "link" else {}
    items = apply.items_from_plan(rows, phase, shard, kept)
    return apply.apply_items(
        os.fsencode(root), items, apply_journal(store, op_dir, phase, shard), on_batch
    )


def rollback_one(
    store: DataStore,
    op_dir: str,
    root: str,
    journal: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
) -> Counter[str]:
    target = rollback_journal(store, op_dir, journal)
    if is_object_url(root):
        objects = ObjectStore(parse_object_url(root))
        return object_rollback.rollback_journal(objects, journal, target, on_batch)
    counts = rollback.rollback_journal(os.fsencode(root), journal, target, on_batch)
    left = rollback.sweep_copies(os.fsencode(root), journal)
    if left:
        counts["debris"] += left  # a partial copy that could not be removed: not complete
    return counts


def rmdir_journal(store: DataStore, op_dir: str) -> str:
    """The journal of the folders apply emptied and removed (tasks.empty_dirs)."""
    return f"{journal_dir(store, op_dir)}/apply/{empty_dirs.RMDIR}-00000.jsonl"


def remove_emptied(store: DataStore, op_dir: str, root: str) -> int:
    """After every move: remove the folders the moves emptied. Returns how many."""
    if is_object_url(root):
        return 0
    sources: list[bytes] = []
    known: set[str] = set()
    for journal in applied_journals(store, op_dir):
        entries = read_journal(journal)
        sources += empty_dirs.moved_sources(entries)
        known.update(e["path"] for e in entries if e["phase"] in ("dirmeta", "mkdir"))
    candidates = empty_dirs.ancestors(sources)
    if not candidates:
        return 0
    return empty_dirs.remove_emptied(
        os.fsencode(root), candidates, rmdir_journal(store, op_dir), known
    )


def recreate_folders(store: DataStore, op_dir: str, root: str) -> tuple[int, int]:
    """Rollback, first: the folders apply removed, back with their mode. Returns (how many
    were made, how many could not be because something else has their name now)."""
    if is_object_url(root):
        return 0, 0
    made, taken = empty_dirs.recreate(os.fsencode(root), rmdir_journal(store, op_dir))
    return made, len(taken)


def tidy_dirs(store: DataStore, op_dir: str, root: str) -> int:
    """After a rollback: remove the folders apply made, now empty, and give the others (the
    ones it removed and made again included) back their times. Returns how many folders were
    removed. Object stores have no folders."""
    if is_object_url(root):
        return 0
    journals = applied_journals(store, op_dir)
    dirs = [d for j in journals for d in rollback.created_dirs(j)]
    removed = rollback.remove_empty_dirs(os.fsencode(root), dirs)
    rollback.restore_dir_times(os.fsencode(root), [*journals, rmdir_journal(store, op_dir)])
    return removed
