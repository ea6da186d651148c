"""What apply and rollback carry out: one Item per plan row (or per undo), on either backend.

A file is recognised by its Identity (dev, ino, size, mtime_ns as the scan saw them); an
object by its ETag (with the size, and the scan's ino so that journals join the same way).
The journal speaks of both the same way: an `intent` entry per item (Item.intent), then its
outcome (`done`, `skipped`, `failed`; `error` when an object store answered with an error),
so counting outcomes, undoing, and settling an interrupted run are written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from storage.journal import Entry, decode_path, encode_entry, encode_path, intent_line, item_seq
from tasks.apply.fsops import Identity

BATCH = 256  # items per journaled batch in a bucket (tasks.apply.objects)
MOVING = ("move", "quarantine")
UNFINISHED = ("intent", "copied")  # latest phases of an item a crash interrupted
MOVE_DIR = "move-dir"  # apply: the plan's folder move (tasks.apply.folders)
RESTORE_DIR = "restore-dir"  # rollback: the same folder back where it was
RESTORE = "restore"  # rollback of a hard link: the copy it replaced, back


_tuple = tuple.__new__


class Skip(Exception):
    """The item is not carried out, for a reason the report shows."""


class Item(NamedTuple):
    """One thing to carry out. A named tuple (immutable, like the frozen dataclass it was):
    an apply or a rollback makes one per move, and it is made four times faster."""

    seq: str
    action: str  # move | quarantine | hardlink | restore | move-dir | restore-dir
    src: bytes
    dst: bytes  # hardlink: the copy's own path (it stays where it is)
    identity: Identity  # an object's: dev 0, the scan's ino, size and mtime
    etag: str = ""  # objects: the source as scanned (apply), the copy apply made (undo)
    link_to: bytes | None = None
    kept: Identity | None = None  # hardlink: the kept copy, at link_to
    meta: Entry | None = None  # restore: mode and times of the copy that was replaced;
    # quarantine: its kept copy, {"kept": Identity, "paths": (scanned, final)} (not journaled)
    digest: bytes | None = None  # hardlink: the plan's content digest of both copies
    undo: bool = False  # rollback's: a move back to where apply found the file or object

    @property
    def since(self) -> str:
        """What the item is checked against: the scan (apply), or the apply (its undo)."""
        return "apply" if self.undo or self.action in (RESTORE, RESTORE_DIR) else "scan"

    def intent(self) -> Entry:
        entry: Entry = {
            "seq": self.seq,
            "phase": "intent",
            "action": self.action,
            "src": encode_path(self.src),
            "dst": encode_path(self.dst),
            "dev": self.identity.dev,
            "ino": self.identity.ino,
            "size": self.identity.size,
            "mtime_ns": self.identity.mtime_ns,
            "link_to": encode_path(self.link_to),
            "kept": None
            if self.kept is None
            else [self.kept.dev, self.kept.ino, self.kept.size, self.kept.mtime_ns],
        }
        if self.digest is not None:
            entry["digest"] = self.digest.hex()
        if self.etag:
            entry["etag"] = self.etag
        return entry

    def intent_line(self) -> bytes:
        """encode_entry(self.intent()), a plain move's without building the entry."""
        if self.link_to is None and self.kept is None and self.digest is None and not self.etag:
            i = self.identity
            return intent_line(
                self.seq, self.action, self.src, self.dst, i.dev, i.ino, i.size, i.mtime_ns
            )
        return encode_entry(self.intent())


def announced(intent: Entry) -> Item:
    """The item an intent describes (Item.intent read back)."""
    kept = intent.get("kept")
    return Item(
        seq=intent["seq"],
        action=intent["action"],
        src=decoded(intent, "src"),
        dst=decoded(intent, "dst"),
        identity=Identity(
            int(intent.get("dev") or 0),
            int(intent.get("ino") or 0),
            int(intent["size"]),
            int(intent.get("mtime_ns") or 0),
        ),
        etag=str(intent.get("etag") or ""),
        link_to=decode_path(intent.get("link_to")),
        kept=Identity(*(int(v) for v in kept)) if kept else None,
        digest=bytes.fromhex(intent["digest"]) if intent.get("digest") else None,
    )


# The plan's columns items_from_plan reads (an object store's rows add the scan's etag).
ITEM_COLUMNS = [
    "src",
    "dst",
    "action",
    "size",
    "mtime_ns",
    "dev",
    "ino",
    "digest",
    "link_to",
    "kind",
]


def items_from_plan(
    rows: Iterable[dict[str, Any]], phase: str, shard: int, kept: dict[bytes, Identity]
) -> list[Item]:
    """The plan rows this phase carries out: moves first (phase 'move'), then hard links.
    A row of an object store's plan carries the ETag its source had when it was scanned."""
    items = []
    for index, row in enumerate(rows):
        if not carries_out(row, phase):
            continue
        action = str(row["action"])
        link_to = row.get("link_to")
        if row.get("kind") == "dir":  # a folder moved whole (a project): one rename
            action = MOVE_DIR
        items.append(
            Item(
                seq=item_seq(phase, shard, index),
                action=action,
                src=row["src"],
                dst=row["dst"],
                identity=Identity(row["dev"], row["ino"], row["size"], row["mtime_ns"]),
                etag=str(row.get("etag") or ""),
                link_to=link_to,
                kept=kept.get(link_to) if link_to is not None else None,
                digest=row.get("digest") if action == "hardlink" else None,
            )
        )
    return items


def items_from_columns(
    columns: Mapping[str, Sequence[Any]],
    phase: str,
    shard: int,
    kept: dict[bytes, Identity],
    twins: Mapping[bytes, Entry] | None = None,
) -> list[Item]:
    """items_from_plan over a plan shard as columns (a list per column, `ITEM_COLUMNS` and
    maybe `etag`): the same items, without a dict per row on the way. `twins`: the kept copy
    of each quarantined path (its `meta`), where the backend checks it."""
    twins = twins or {}
    actions = columns["action"]
    absent = [None] * len(actions)
    wanted = MOVING if phase == "move" else ("hardlink",)
    rows = zip(
        actions,
        columns["src"],
        columns["dst"],
        columns["dev"],
        columns["ino"],
        columns["size"],
        columns["mtime_ns"],
        columns.get("kind", absent),
        columns.get("link_to", absent),
        columns.get("digest", absent),
        columns.get("etag", absent),
        strict=True,
    )
    prefix = item_seq(phase, shard, 0)[:-1]
    items = []
    for index, row in enumerate(rows):
        action, src, dst, dev, ino, size, mtime_ns, kind, link_to, digest, etag = row
        if action not in wanted:
            continue
        # Item(...) and Identity(...) as tuples of their fields, in order: their own
        # __new__ is a Python function, two calls a plan row.
        items.append(
            _tuple(
                Item,
                (
                    f"{prefix}{index}",  # item_seq(phase, shard, index)
                    MOVE_DIR if kind == "dir" else action,  # a folder moved whole: one rename
                    src,
                    dst,
                    _tuple(Identity, (dev, ino, size, mtime_ns)),
                    str(etag or ""),
                    link_to,
                    None if link_to is None else kept.get(link_to),
                    twins.get(src) if action == "quarantine" else None,
                    digest if action == "hardlink" else None,
                    False,  # undo
                ),
            )
        )
    return items


def carries_out(row: dict[str, Any], phase: str) -> bool:
    """Whether apply `phase` carries out this plan row (moves, then hard links)."""
    action = str(row["action"])
    return action in MOVING if phase == "move" else action == "hardlink"


def count_key(entry: Entry) -> str:
    """The report's name for an outcome: done, conflicts, vanished, unsafe, changed, errors."""
    if entry["phase"] == "done":
        return "done"
    if entry["phase"] in ("failed", "error"):
        return "errors"
    reason = str(entry.get("reason", ""))
    if reason.startswith("conflict"):
        return "conflicts"
    if reason.startswith("vanished"):
        return "vanished"
    if reason.startswith("unsafe"):
        return "unsafe"
    return "changed"


def decoded(entry: Entry, key: str) -> bytes:
    value = decode_path(entry.get(key))
    assert value is not None
    return value
