"""Rollback: undo what an apply journal says was done, newest first, with the same checks.

Each undo is itself an item of the apply machinery (a move back, or a restore of a copy that
was replaced by a hard link), journaled in its own file under the same `seq`, so an
interrupted rollback is finished by running it again, and a second rollback does nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import Counter
from collections.abc import Callable

from storage.journal import Entry, Journal, decode_path, last_phase, read_journal
from tasks import apply_dirs
from tasks.apply import MOVING, UNFINISHED, Item, _tmp_name, apply_items, decoded, reconcile
from tasks.fsops import Identity, UnsafePath, lstat_at, open_root, parent_of


def undo_items(apply_journal: str) -> list[Item]:
    """Items that undo every done entry of `apply_journal`, newest first."""
    entries = read_journal(apply_journal)
    intents: dict[str, Entry] = {}
    outcome: dict[str, Entry] = {}
    order: list[str] = []
    for entry in entries:
        if entry["phase"] == "intent":
            if entry["seq"] not in intents:
                order.append(entry["seq"])
            intents[entry["seq"]] = entry
        elif entry["phase"] not in ("mkdir", "dirmeta", "copied"):
            outcome[entry["seq"]] = entry
    items = []
    for seq in reversed(order):
        done = outcome.get(seq)
        if done is None or done["phase"] != "done":
            continue
        intent = intents[seq]
        size, mtime_ns = int(intent["size"]), int(intent["mtime_ns"])
        if intent["action"] == "hardlink":
            items.append(_restore_item(seq, intent, done))
            continue
        at_destination = Identity(int(done["dev"]), int(done["ino"]), size, mtime_ns)
        moved_folder = intent["action"] == apply_dirs.MOVE
        items.append(
            Item(
                seq=seq,
                action=apply_dirs.RESTORE if moved_folder else "move",
                src=decoded(intent, "dst"),
                dst=decoded(intent, "src"),
                identity=at_destination,
            )
        )
    return items


def _restore_item(seq: str, intent: Entry, done: Entry) -> Item:
    link_to = decode_path(intent.get("link_to"))
    kept = intent.get("kept")
    return Item(
        seq=seq,
        action="restore",
        src=decoded(intent, "src"),
        dst=decoded(intent, "src"),
        identity=Identity(
            int(intent["dev"]), int(intent["ino"]), int(intent["size"]), int(intent["mtime_ns"])
        ),
        link_to=link_to,
        kept=Identity(*(int(v) for v in kept)) if kept else None,
        meta={
            "mode": done.get("mode", 0o100644),
            "atime_ns": done.get("atime_ns", 0),
            "mtime_ns": done.get("mtime_ns", intent["mtime_ns"]),
        },
    )


def settle_interrupted(root: bytes, apply_journal: str) -> int:
    """Journal what became of the items an interrupted apply announced but never confirmed,
    decided from the files as its resume would: a rollback may follow a killed apply that was
    never finished, and must undo those moves too. Returns how many were found done."""
    entries = read_journal(apply_journal)
    intents = {e["seq"]: e for e in entries if e["phase"] == "intent"}
    pending = [
        e for e in last_phase(entries).values() if e["phase"] in UNFINISHED and e["seq"] in intents
    ]
    if not pending:
        return 0
    settled = 0
    with Journal(apply_journal) as journal, open_root(root) as root_fd:
        for latest in pending:
            outcome = reconcile(root_fd, _announced(intents[latest["seq"]]), latest)
            if outcome is not None:
                journal.add(outcome)
                settled += 1
    return settled


def _announced(intent: Entry) -> Item:
    kept = intent.get("kept")
    return Item(
        seq=intent["seq"],
        action=intent["action"],
        src=decoded(intent, "src"),
        dst=decoded(intent, "dst"),
        identity=Identity(
            int(intent["dev"]), int(intent["ino"]), int(intent["size"]), int(intent["mtime_ns"])
        ),
        link_to=decode_path(intent.get("link_to")),
        kept=Identity(*(int(v) for v in kept)) if kept else None,
        digest=bytes.fromhex(intent["digest"]) if intent.get("digest") else None,
    )


def rollback_journal(
    root: bytes,
    apply_journal: str,
    rollback_journal_path: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
) -> Counter[str]:
    settle_interrupted(root, apply_journal)
    return apply_items(
        root, undo_items(apply_journal), rollback_journal_path, on_batch, retry_skipped=True
    )


def sweep_copies(root: bytes, apply_journal: str) -> int:
    """Partial copies a move across devices left behind (a run cut short, or an older fileorg
    that did not clean up after a full disk): each is removed where the file it copies is
    still intact at its source. Returns how many are left, which keeps the rollback from
    being reported complete."""
    done = last_phase(read_journal(apply_journal))
    left = 0
    with open_root(root) as root_fd:
        for intent in read_journal(apply_journal):
            if intent["phase"] != "intent" or intent["action"] not in MOVING:
                continue
            src, dst = decoded(intent, "src"), decoded(intent, "dst")
            scanned = Identity(*(int(intent[k]) for k in ("dev", "ino", "size", "mtime_ns")))
            left += _drop_copy(root_fd, dst, src, scanned, intent["seq"])
            outcome = done.get(intent["seq"], {})
            if outcome.get("phase") == "done" and "dev" in outcome:  # its undo copied back
                moved = Identity(
                    int(outcome["dev"]), int(outcome["ino"]), scanned.size, scanned.mtime_ns
                )
                left += _drop_copy(root_fd, src, dst, moved, intent["seq"])
    return left


def _drop_copy(root_fd: int, beside: bytes, source: bytes, identity: Identity, seq: str) -> int:
    """Remove the copy of `source` left beside `beside` if `source` is intact; 1 if it stays."""
    tmp = _tmp_name(seq, "copy")
    try:
        with parent_of(root_fd, beside) as (fd, _):
            if lstat_at(fd, tmp) is None:
                return 0
            with parent_of(root_fd, source) as (src_fd, name):
                st = lstat_at(src_fd, name)
            if st is None or not identity.matches(st):
                return 1  # maybe the only copy left: a person decides
            os.unlink(tmp, dir_fd=fd)
            os.fsync(fd)
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return 0
    return 0


def created_dirs(apply_journal: str) -> list[bytes]:
    paths = [decode_path(e["path"]) for e in read_journal(apply_journal) if e["phase"] == "mkdir"]
    return [p for p in paths if p is not None]


def remove_empty_dirs(root: bytes, dirs: list[bytes]) -> int:
    """Remove directories apply created, deepest first, where they are empty again."""
    removed = 0
    with open_root(root) as root_fd:
        for rel in sorted(set(dirs), key=lambda p: (-p.count(b"/"), p)):
            with (
                contextlib.suppress(FileNotFoundError, UnsafePath, NotADirectoryError),
                parent_of(root_fd, rel) as (fd, name),
            ):
                try:
                    os.rmdir(name, dir_fd=fd)
                    removed += 1
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        raise
    return removed


def restore_dir_times(root: bytes, apply_journals: list[str]) -> int:
    """Give directories the times they had before the apply (the earliest record wins)."""
    times: dict[bytes, tuple[int, int]] = {}
    for journal in apply_journals:
        for e in read_journal(journal):
            # A folder apply removed has its times in its `rmdir` entry, the last resort.
            path = decode_path(e.get("path")) if e["phase"] in ("dirmeta", "rmdir") else None
            if path is not None and path not in times:
                times[path] = (int(e["atime_ns"]), int(e["mtime_ns"]))
    restored = 0
    with open_root(root) as root_fd:
        for rel, ns in times.items():
            if not rel:
                os.utime(root_fd, ns=ns)
                restored += 1
                continue
            with (
                contextlib.suppress(FileNotFoundError, UnsafePath, NotADirectoryError),
                parent_of(root_fd, rel) as (fd, name),
            ):
                os.utime(name, dir_fd=fd, ns=ns, follow_symlinks=False)
                restored += 1
    return restored
