"""Apply and roll back a whole operation, shard by shard, over its plan and journals."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from storage import manifests
from storage.errors import StorageError
from storage.journal import read_journal
from storage.locations import DataStore
from tasks import apply, rollback
from tasks.fsops import Identity

PHASES = ("move", "link")  # hard links point at kept copies' final paths: after every move


def journal_dir(store: DataStore, op_dir: str) -> str:
    if not store.is_local:
        raise StorageError("apply keeps its journal on local disk: use a local FILEORG_DATA_URL")
    return f"{op_dir}/journal"


def apply_journal(store: DataStore, op_dir: str, phase: str, shard: int) -> str:
    return f"{journal_dir(store, op_dir)}/apply/{phase}-{shard:05d}.jsonl"


def applied_journals(store: DataStore, op_dir: str) -> list[str]:
    """Apply journals in the order they were written."""
    found = []
    for phase in PHASES:
        found += sorted(store.glob(f"{journal_dir(store, op_dir)}/apply/{phase}-*.jsonl"))
    return found


def has_applied_anything(store: DataStore, op_dir: str) -> bool:
    return any(
        e["phase"] in ("intent", "mkdir")
        for path in applied_journals(store, op_dir)
        for e in read_journal(path)
    )


def plan_shards(store: DataStore, op_dir: str) -> int:
    return len(manifests.shard_paths(store, op_dir, "plan"))


def _kept_identities(store: DataStore, op_dir: str) -> dict[bytes, Identity]:
    """Final path -> identity of every file that stays or moves: the targets of hard links."""
    kept: dict[bytes, Identity] = {}
    for path in manifests.shard_paths(store, op_dir, "plan"):
        for row in manifests.read_table(store, path).to_pylist():
            if row["action"] in ("move", "keep"):
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
    name = os.path.basename(journal)
    target = f"{journal_dir(store, op_dir)}/rollback/{name}"
    return rollback.rollback_journal(os.fsencode(root), journal, target, on_batch)


def tidy_dirs(store: DataStore, op_dir: str, root: str) -> int:
    """After a rollback: remove the folders apply made, now empty, and give the others back
    their times. Returns how many folders were removed."""
    journals = applied_journals(store, op_dir)
    dirs = [d for j in journals for d in rollback.created_dirs(j)]
    removed = rollback.remove_empty_dirs(os.fsencode(root), dirs)
    rollback.restore_dir_times(os.fsencode(root), journals)
    return removed
