"""The local mover: the only code that changes a local tree, one batch of items at a time.

For every item: re-check the file against the scan (size, mtime_ns, inode), move without
ever overwriting (rename without replace; across devices a verified copy linked into place,
then the source removed), fsync the directories, journal the outcome. A file that changed or
vanished is skipped and reported; a destination that appeared meanwhile is a conflict, never
an overwrite. Hard links replace duplicate copies only when both still hash to the plan's
digest; rollback's restore gives a linked path its own copy back (both tasks.apply.local_links).
A fresh journal whose every item was renamed is sealed with its moves file
(storage.journal_moves), which rollback reads instead of the journal. The loop, the intents and
the resume are tasks.apply.engine's; the crash cases are tasks.apply.local_recovery's.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import NamedTuple

from storage import collector
from storage.journal import Entry, Journal, done_line, encode_entry, encode_path
from storage.journal_moves import write_moves
from tasks.apply import dirs, folders
from tasks.apply.batch_dirs import BatchDirs
from tasks.apply.engine import Outcome
from tasks.apply.fsops import (
    UnsafePath,
    check_room,
    copy_beside,
    digest_at,
    lstat_at,
    open_root,
    rename_noreplace,
    stat_rel,
    temp_name,
)
from tasks.apply.items import MOVE_DIR, RESTORE, RESTORE_DIR, Item, Skip, count_key
from tasks.apply.local_links import Restored, hardlink, restore_copy
from tasks.apply.local_recovery import check_kept, moved_back, reconcile
from tasks.apply.not_permitted import not_permitted


def move(
    dirs: BatchDirs,
    item: Item,
    on_mkdir: Callable[[bytes], None],
    on_copied: Callable[[str, os.stat_result], None] = lambda seq, st: None,
) -> Entry | None:
    """Move src to dst if src is still the file the plan saw; never replace dst (the rename
    refuses a taken name: no look beforehand could be trusted anyway). None when renamed and
    the file at dst still has the item's dev and ino (its outcome `renamed_line(item)`);
    otherwise the outcome. The lstat after the rename stays: some filesystems give a renamed
    file another inode number (overlayfs copying a lower file up, FUSE, SMB without server
    inode numbers), and rollback recognises the file by the one journaled."""
    identity = item.identity
    try:
        src_fd, src_name = dirs.parent(item.src)
        st = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)  # missing: moved_back
        if not identity.matches(st):
            raise Skip("changed since scan")
        if item.meta is not None:
            check_kept(dirs.root_fd, item)  # a quarantine's kept copy
        dst_fd, name = dirs.parent(item.dst, True, on_mkdir)
        method = "rename"
        try:
            rename_noreplace(src_fd, src_name, dst_fd, name)
        except FileExistsError:
            raise Skip("conflict: destination exists") from None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            method = "copy"
            _copy_across(src_fd, src_name, dst_fd, name, st, item.seq, on_copied)
        after = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        return moved_back(dirs.root_fd, item)
    except UnsafePath as exc:
        raise Skip(f"unsafe path: {exc.strerror}") from None
    dev, ino = after.st_dev, after.st_ino
    if method == "rename" and ino == identity.ino and dev == identity.dev:
        return None
    return {"seq": item.seq, "phase": "done", "method": method, "dev": dev, "ino": ino}


def renamed_line(item: Item) -> bytes:
    """The outcome of an item `move` renamed (it returned None), as encode_entry writes it."""
    identity = item.identity
    return done_line(item.seq, "rename", identity.dev, identity.ino)


def _copy_across(
    src_fd: int,
    src_name: bytes,
    dst_fd: int,
    name: bytes,
    st: os.stat_result,
    seq: str,
    on_copied: Callable[[str, os.stat_result], None],
) -> None:
    """Across devices: check the room, copy beside the destination, fsync, verify, journal the
    copy's inode (on_copied), link into place without overwriting, and only then remove the
    source. Any failure before that last step (a full disk, an I/O error, an interrupt)
    removes the copy and its name at the destination: the source alone remains."""
    if lstat_at(dst_fd, name) is not None:
        raise Skip("conflict: destination exists")  # before copying what could not be linked
    tmp = temp_name(seq, "copy")
    if lstat_at(dst_fd, tmp) is not None:
        os.unlink(tmp, dir_fd=dst_fd)  # our own leftover from an interrupted attempt
    check_room(dst_fd, st.st_size)
    owner = (st.st_uid, st.st_gid)
    times = (st.st_atime_ns, st.st_mtime_ns)
    written = copy_beside(src_fd, src_name, dst_fd, tmp, st.st_mode, *times, owner=owner)
    copied = lstat_at(dst_fd, tmp)
    assert copied is not None
    try:
        if digest_at(src_fd, src_name) != written or digest_at(dst_fd, tmp) != written:
            raise Skip("changed while copying")
        # Once the source is gone, only this record tells our copy from a stranger's file.
        on_copied(seq, copied)
        try:
            os.link(tmp, name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        except FileExistsError:
            raise Skip("conflict: destination exists") from None
        os.fsync(dst_fd)
        os.unlink(tmp, dir_fd=dst_fd)
        os.unlink(src_name, dir_fd=src_fd)
    except BaseException:
        for leftover in (tmp, name):
            _unlink_if_same(dst_fd, leftover, copied)
        raise


def _unlink_if_same(dir_fd: int, name: bytes, st: os.stat_result) -> None:
    """Remove `name` if it is still the file `st` describes (our copy); never anything else."""
    with contextlib.suppress(OSError):
        now = lstat_at(dir_fd, name)
        if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.unlink(name, dir_fd=dir_fd)


class LocalMover(NamedTuple):
    """Moves under a local root (bytes path), opened once per journal run."""

    root: bytes

    @contextmanager
    def session(self, latest: dict[str, Entry]) -> Iterator[LocalSession]:
        with open_root(self.root) as root_fd:
            session = LocalSession(root_fd, latest)
            yield session
            session.seal()  # only after a run that raised nothing


class LocalSession:
    # Items per journaled batch: each costs a journal fsync and one per folder it changed, a
    # folder that spans two batches twice (a flush of the disk each: 381 fsyncs, 2.4 s at
    # 200,000 moves in batches of 4,096, 261 and 1.5 s in 20,000, at load 11), and settling
    # after a crash re-checks at most this many items: a default plan shard
    # (storage.settings.shard_rows) is one batch.
    batch = 20_000

    def __init__(self, root_fd: int, latest: dict[str, Entry]) -> None:
        self.root_fd = root_fd
        self.restored: Restored = {}
        self.made_dirs = {e["path"] for e in latest.values() if e["phase"] == "mkdir"}
        self.seen_dirs = {e["path"] for e in latest.values() if e["phase"] == "dirmeta"}
        # A fresh journal's batches, while every item of them was renamed (`move` gave None):
        # the rows of its moves file (storage.journal_moves) are their items'.
        self.moved: list[Sequence[Item]] | None = None if latest else []
        self.journal: Journal | None = None

    def settle(self, pending: Sequence[tuple[Item, Entry]]) -> list[Outcome]:
        return [reconcile(self.root_fd, item, entry) for item, entry in pending]

    def noted(self, item: Item, entry: Entry) -> None:
        if item.action == RESTORE and entry["phase"] == "done":
            self.restored.setdefault((item.identity.dev, item.identity.ino), item.src)

    def announce(self, batch: Sequence[Item], journal: Journal) -> None:
        known = self.seen_dirs | self.made_dirs
        for entry in dirs.folder_times(self.root_fd, batch, known, self.seen_dirs):
            journal.add(entry)
        for item in batch:
            if item.action == "hardlink":
                journal.add(self._link_intent(item))
            else:
                journal.add_line(item.intent_line())

    def _link_intent(self, item: Item) -> Entry:
        # Once linked, the copy's own inode is gone with its mode: durable before the link,
        # so that a crash right after it still rolls back to the copy's mode and times.
        entry = item.intent()
        st = stat_rel(self.root_fd, item.src)
        if st is not None:
            entry["copy"] = {"mode": st.st_mode, "atime_ns": st.st_atime_ns}
        return entry

    def carry_out(self, batch: Sequence[Item], journal: Journal) -> Counter[str]:
        touched = BatchDirs(self.root_fd)
        counts: Counter[str] = Counter()
        held: list[bytes] = []  # outcome lines whose folders are not fsynced yet
        # Made once a batch, not once an item: the journal is the batch's.
        on_mkdir, on_copied = partial(self._made_dir, journal), partial(_copied, journal)
        self.journal = journal
        renamed = 0
        # Each move makes a few small objects (a stat result, the split paths), no cycle: the
        # collector's passes (over every item of the shard) would be all they cost.
        try:
            with collector.paused():
                for item in batch:
                    outcome = self._one(item, touched, on_mkdir, on_copied)
                    if outcome is None:
                        held.append(renamed_line(item))
                        renamed += 1
                    else:
                        held.append(encode_entry(outcome))
                        counts[count_key(outcome)] += 1
                    if touched.full:
                        _release(touched, held, journal)
                _release(touched, held, journal)
        finally:
            touched.close()
        if renamed:
            counts["done"] += renamed
        if self.moved is not None:
            if renamed == len(batch):
                self.moved.append(batch)
            else:  # a skip, a copy, a link, a folder: no moves file
                self.moved = None
        return counts

    def seal(self) -> None:
        """After every item of a fresh journal was renamed: the moves file, then its seal.
        Not for a rollback's journal (its moves are undos): nothing reads it so."""
        journal, moved = self.journal, self.moved
        if not moved or journal is None or type(journal) is not Journal:
            return
        if any(item.undo for batch in moved for item in batch):
            return
        # (seq, src, dst, dev, ino, size, mtime_ns): a renamed file keeps the item's identity.
        with collector.paused():  # a tuple a move, none refers to another
            rows = [(i.seq, i.src, i.dst, *i.identity) for batch in moved for i in batch]
        journal.sync()  # every outcome written: the length the seal names
        journal.add(write_moves(journal.path, rows))

    def _made_dir(self, journal: Journal, rel_dir: bytes) -> None:
        key = encode_path(rel_dir)
        assert key is not None
        if key not in self.made_dirs:
            self.made_dirs.add(key)
            parent = dirs.parent_times(self.root_fd, rel_dir, self.made_dirs, self.seen_dirs)
            for entry in parent:
                journal.add(entry)
            journal.add({"seq": f"mkdir:{key}", "phase": "mkdir", "path": key})
            journal.sync()

    def _one(
        self,
        item: Item,
        touched: BatchDirs,
        on_mkdir: Callable[[bytes], None],
        on_copied: Callable[[str, os.stat_result], None],
    ) -> Entry | None:
        try:
            action = item.action
            if action == "hardlink":
                return hardlink(self.root_fd, item, touched)
            if action == RESTORE:
                return restore_copy(self.root_fd, item, touched, self.restored)
            if action in (MOVE_DIR, RESTORE_DIR):
                return folders.move_folder(self.root_fd, item, on_mkdir, touched)
            return move(touched, item, on_mkdir, on_copied)
        except Skip as exc:
            return {"seq": item.seq, "phase": "skipped", "reason": str(exc)}
        except OSError as exc:
            why = not_permitted(self.root_fd, item) if exc.errno == errno.EPERM else None
            return {"seq": item.seq, "phase": "failed", "reason": why or f"{exc.strerror or exc}"}


def _copied(journal: Journal, seq: str, st: os.stat_result) -> None:
    journal.add({"seq": seq, "phase": "copied", "dev": st.st_dev, "ino": st.st_ino})
    journal.sync()


def _release(touched: BatchDirs, held: list[bytes], journal: Journal) -> None:
    """The renames are durable (their folders fsynced) before their outcomes are journaled:
    a journal that says done is never ahead of the files, whatever syncs it meanwhile (a
    folder made, a copy recorded). The engine's next sync makes the outcomes durable."""
    touched.sync()
    if held:
        journal.add_line(b"".join(held))
        held.clear()
