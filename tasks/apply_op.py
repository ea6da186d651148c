"""Apply and roll back a whole operation, shard by shard, over its plan and journals.

A local root is changed by tasks.apply and tasks.rollback, an object-store root
(`s3://bucket/prefix`) by tasks.object_apply and tasks.object_rollback: objects only move
(no hard links, no folders to tidy). Journals live in the data folder: files on local disk,
segment objects when the data folder is in an object store (their paths are then object URLs,
`profile://bucket/...`, which storage.journal reads and writes).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable

from storage import manifests
from storage.errors import StorageError
from storage.journal import read_journal
from storage.locations import DataStore
from storage.objects import ObjectStore, is_object_url, parse_object_url
from tasks import apply, object_apply, object_rollback, rollback
from tasks.fsops import Identity

PHASES = ("move", "link")  # hard links point at kept copies' final paths: after every move


def phases_for(root: str) -> tuple[str, ...]:
    """The phases apply runs on `root`: objects only move."""
    return ("move",) if is_object_url(root) else PHASES


JOURNAL_NAME = re.compile(r"(?:.*/)?(?P<phase>[a-z]+)-[0-9]{5}\.jsonl")


def journal_dir(store: DataStore, op_dir: str) -> str:
    if store.is_local:
        return f"{op_dir}/journal"
    if is_object_url(store.url):
        return f"{parse_object_url(store.url).profile}://{op_dir}/journal"
    raise StorageError(
        "apply keeps its journal on local disk or in an object store: "
        "use a local or s3:// FILEORG_DATA_URL"
    )


def apply_journal(store: DataStore, op_dir: str, phase: str, shard: int) -> str:
    return f"{journal_dir(store, op_dir)}/apply/{phase}-{shard:05d}.jsonl"


def applied_journals(store: DataStore, op_dir: str) -> list[str]:
    """Apply journals in the order they were written."""
    directory = f"{journal_dir(store, op_dir)}/apply"
    if store.is_local:
        names = [p.rsplit("/", 1)[-1] for p in store.glob(f"{directory}/*-*.jsonl")]
    else:
        names = _segment_journals(directory)
    found = []
    for phase in PHASES:
        mine = [n for n in names if (m := JOURNAL_NAME.fullmatch(n)) and m["phase"] == phase]
        found += [f"{directory}/{name}" for name in sorted(mine)]
    return found


def _segment_journals(directory: str) -> list[str]:
    """Names of the journals under an object URL: each is a folder of segments, and one that
    was ever written has its first segment."""
    listing = ObjectStore(parse_object_url(directory))
    first = "/00000000.jsonl"
    return [
        listing.root.rel(info.key).removesuffix(".d" + first)
        for page in listing.list_pages()
        for info in page
        if info.key.endswith(".d" + first)
    ]


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
    name = journal.rsplit("/", 1)[-1]
    target = f"{journal_dir(store, op_dir)}/rollback/{name}"
    if is_object_url(root):
        objects = ObjectStore(parse_object_url(root))
        return object_rollback.rollback_journal(objects, journal, target, on_batch)
    return rollback.rollback_journal(os.fsencode(root), journal, target, on_batch)


def tidy_dirs(store: DataStore, op_dir: str, root: str) -> int:
    """After a rollback: remove the folders apply made, now empty, and give the others back
    their times. Returns how many folders were removed. Object stores have no folders."""
    if is_object_url(root):
        return 0
    journals = applied_journals(store, op_dir)
    dirs = [d for j in journals for d in rollback.created_dirs(j)]
    removed = rollback.remove_empty_dirs(os.fsencode(root), dirs)
    rollback.restore_dir_times(os.fsencode(root), journals)
    return removed
