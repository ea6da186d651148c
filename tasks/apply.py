"""Apply: the only code that changes the tree. It carries out one plan shard at a time.

For every item: re-check the file against the scan (size, mtime_ns, inode), journal the
intent (fsynced, in batches), move without ever overwriting, fsync the directories, journal
the outcome. A file that changed or vanished is skipped and reported; a destination that
appeared meanwhile is a conflict, never an overwrite. Resuming after a crash reads the
journal and decides each unfinished item from the real state of the files (reconcile_*).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from storage.journal import (
    Entry,
    Journal,
    decode_path,
    encode_path,
    item_seq,
    last_phase,
    read_journal,
)
from tasks import apply_dirs
from tasks.fsops import (
    Identity,
    UnsafePath,
    check_room,
    copy_beside,
    digest_at,
    lstat_at,
    open_root,
    parent_of,
    rename_noreplace,
)

BATCH = 256
MOVING = ("move", "quarantine")
UNFINISHED = ("intent", "copied")  # latest phases of an item a crash interrupted


@dataclass(frozen=True, slots=True)
class Item:
    seq: str
    action: str  # move | quarantine | hardlink | restore (undo of hardlink) | apply_dirs.ACTIONS
    src: bytes
    dst: bytes  # hardlink: the copy's own path (it stays where it is)
    identity: Identity
    link_to: bytes | None = None
    kept: Identity | None = None  # hardlink: the kept copy, at link_to
    meta: Entry | None = None  # restore: mode and times of the copy that was replaced
    digest: bytes | None = None  # hardlink: the plan's content digest of both copies

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
        return entry


# Directories changed by a batch, by (dev, ino), each fsynced once at the end of the batch.
Touched = dict[tuple[int, int], int]


def remember(touched: Touched, dir_fd: int) -> None:
    st = os.fstat(dir_fd)
    if (st.st_dev, st.st_ino) not in touched:
        touched[(st.st_dev, st.st_ino)] = os.dup(dir_fd)


class Skip(Exception):
    """The item is not carried out, for a reason the report shows."""


@contextmanager
def _skips(since: str) -> Iterator[None]:
    """What makes an item impossible (its file gone, its name taken, a symlinked parent),
    said once as the reason it is skipped."""
    try:
        yield
    except FileNotFoundError:
        raise Skip(f"vanished since {since}") from None
    except FileExistsError:
        raise Skip("conflict: name taken") from None
    except UnsafePath as exc:
        raise Skip(f"unsafe path: {exc.strerror}") from None


def _tmp_name(seq: str, kind: str) -> bytes:
    # Short and deterministic: recovery finds its own leftovers, names stay far below 255.
    return f".fileorg-{kind}-{hashlib.blake2s(seq.encode(), digest_size=8).hexdigest()}".encode()


def _stat_rel(root_fd: int, rel: bytes) -> os.stat_result | None:
    try:
        with parent_of(root_fd, rel) as (fd, name):
            return lstat_at(fd, name)
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return None


def move(
    root_fd: int,
    src: bytes,
    dst: bytes,
    identity: Identity,
    seq: str,
    on_mkdir: Callable[[bytes], None],
    touched: Touched,
    on_copied: Callable[[os.stat_result], None] = lambda st: None,
) -> Entry:
    """Move src to dst if src is still the file the plan saw; never replace dst."""
    try:
        with parent_of(root_fd, src) as (src_fd, src_name):
            st = lstat_at(src_fd, src_name)
            if st is None:
                raise Skip("vanished since scan")
            if not identity.matches(st):
                raise Skip("changed since scan")
            with parent_of(root_fd, dst, create=True, before_mkdir=on_mkdir) as (dst_fd, name):
                if lstat_at(dst_fd, name) is not None:
                    raise Skip("conflict: destination exists")
                method = "rename"
                try:
                    rename_noreplace(src_fd, src_name, dst_fd, name)
                except FileExistsError:
                    raise Skip("conflict: destination exists") from None
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    method = "copy"
                    _copy_across(src_fd, src_name, dst_fd, name, st, seq, on_copied)
                after = lstat_at(dst_fd, name)
                remember(touched, src_fd)
                remember(touched, dst_fd)
    except FileNotFoundError:
        raise Skip("vanished since scan") from None
    except UnsafePath as exc:
        raise Skip(f"unsafe path: {exc.strerror}") from None
    assert after is not None
    return {"seq": seq, "phase": "done", "method": method, "dev": after.st_dev, "ino": after.st_ino}


def _copy_across(
    src_fd: int,
    src_name: bytes,
    dst_fd: int,
    name: bytes,
    st: os.stat_result,
    seq: str,
    on_copied: Callable[[os.stat_result], None],
) -> None:
    """Across devices: check the room, copy beside the destination, fsync, verify, journal the
    copy's inode (on_copied), link into place without overwriting, and only then remove the
    source. Any failure before that last step (a full disk, an I/O error, an interrupt)
    removes the copy and its name at the destination: the source alone remains."""
    tmp = _tmp_name(seq, "copy")
    if lstat_at(dst_fd, tmp) is not None:
        os.unlink(tmp, dir_fd=dst_fd)  # our own leftover from an interrupted attempt
    check_room(dst_fd, st.st_size)
    written = copy_beside(src_fd, src_name, dst_fd, tmp, st.st_mode, st.st_atime_ns, st.st_mtime_ns)
    copied = lstat_at(dst_fd, tmp)
    assert copied is not None
    try:
        if digest_at(src_fd, src_name) != written or digest_at(dst_fd, tmp) != written:
            raise Skip("changed while copying")
        # Once the source is gone, only this record tells our copy from a stranger's file.
        on_copied(copied)
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


def hardlink(root_fd: int, item: Item, touched: Touched) -> Entry:
    """Replace a duplicate copy by a hard link to the kept file: rename the copy aside, check
    that its bytes and the kept file's are still the plan's, link, then remove the aside name;
    a failure or a mismatch in between puts the copy back."""
    assert item.link_to is not None and item.kept is not None
    aside = _tmp_name(item.seq, "aside")
    with _skips("scan"), parent_of(root_fd, item.link_to) as (kept_fd, kept_name):
        kept_st = lstat_at(kept_fd, kept_name)
        if kept_st is None or not item.kept.matches(kept_st):
            raise Skip("kept copy changed or vanished")
        with parent_of(root_fd, item.src) as (fd, name):
            st = lstat_at(fd, name)
            if st is None:
                raise Skip("vanished since scan")
            if not item.identity.matches(st):
                raise Skip("changed since scan")
            if st.st_dev != kept_st.st_dev:
                raise Skip("kept copy is on another device")
            # The copy's bytes are read under the aside name: the very inode the link is
            # about to replace, out of reach of anyone who opens it by its path.
            rename_noreplace(fd, name, fd, aside)
            try:
                _check_same_bytes(kept_fd, kept_name, fd, aside, item.digest)
                os.link(kept_name, name, src_dir_fd=kept_fd, dst_dir_fd=fd, follow_symlinks=False)
            except (OSError, Skip):
                rename_noreplace(fd, aside, fd, name)
                raise
            os.fsync(fd)
            os.unlink(aside, dir_fd=fd)
            remember(touched, fd)
    return {
        "seq": item.seq,
        "phase": "done",
        "mode": st.st_mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "atime_ns": st.st_atime_ns,
        "mtime_ns": st.st_mtime_ns,
    }


def _check_same_bytes(
    kept_fd: int, kept_name: bytes, fd: int, name: bytes, planned: bytes | None
) -> None:
    """Size, mtime and inode cannot see an edit that keeps the size and puts the mtime back:
    a link replaces a copy only when both files still hash to the plan's digest (or, with
    no digest, to each other)."""
    kept = digest_at(kept_fd, kept_name)
    if planned is not None and kept != planned:
        raise Skip("the kept copy's content changed since scan: not linked")
    if digest_at(fd, name) != kept:
        raise Skip("content changed since scan: not linked")


# Restored copies by the (dev, ino) the copy had before apply: its other names come back as
# links to the first one restored, as they were, not as copies of their own.
Restored = dict[tuple[int, int], bytes]


def restore_copy(
    root_fd: int, item: Item, touched: Touched, restored: Restored | None = None
) -> Entry:
    """Undo of hardlink: the path becomes an independent copy again, with the mode and times
    the replaced copy had (its inode number cannot come back)."""
    restored = {} if restored is None else restored
    original = (item.identity.dev, item.identity.ino)
    assert item.link_to is not None and item.kept is not None and item.meta is not None
    tmp, aside = _tmp_name(item.seq, "restore"), _tmp_name(item.seq, "aside")
    with _skips("apply"), parent_of(root_fd, item.link_to) as (kept_fd, kept_name):
        kept_st = lstat_at(kept_fd, kept_name)
        if kept_st is None or not item.kept.matches(kept_st):
            raise Skip("kept copy changed or vanished since apply")
        with parent_of(root_fd, item.src) as (fd, name):
            st = lstat_at(fd, name)
            if st is None or (st.st_dev, st.st_ino) != (kept_st.st_dev, kept_st.st_ino):
                raise Skip("changed since apply")
            if lstat_at(fd, tmp) is not None:
                os.unlink(tmp, dir_fd=fd)  # our own leftover from an interrupted attempt
            meta = item.meta
            if not _link_to_twin(root_fd, restored.get(original), kept_st, fd, tmp):
                check_room(fd, kept_st.st_size)
                copy_beside(
                    kept_fd,
                    kept_name,
                    fd,
                    tmp,
                    int(meta["mode"]),
                    int(meta["atime_ns"]),
                    int(meta["mtime_ns"]),
                )
            _swap_in(fd, name, tmp, aside)
            remember(touched, fd)
    restored.setdefault(original, item.src)
    return {"seq": item.seq, "phase": "done"}


def _swap_in(fd: int, name: bytes, tmp: bytes, aside: bytes) -> None:
    """Put the restored copy `tmp` in place of the link at `name`. A failure puts the link
    back and removes `tmp`: no temporary name outlives the attempt."""
    try:
        rename_noreplace(fd, name, fd, aside)
        rename_noreplace(fd, tmp, fd, name)
        os.fsync(fd)
        os.unlink(aside, dir_fd=fd)
    except BaseException:
        with contextlib.suppress(OSError):
            aside_st = lstat_at(fd, aside)
            if lstat_at(fd, name) is None and aside_st is not None:
                rename_noreplace(fd, aside, fd, name)
            elif aside_st is not None and aside_st.st_nlink > 1 and lstat_at(fd, tmp) is None:
                os.unlink(aside, dir_fd=fd)  # the copy is in place: this is a name of the kept file
            if lstat_at(fd, tmp) is not None:
                os.unlink(tmp, dir_fd=fd)
        raise


def _link_to_twin(
    root_fd: int, twin: bytes | None, kept_st: os.stat_result, fd: int, tmp: bytes
) -> bool:
    """Make `tmp` a new name of the already restored twin, if it is still that copy."""
    if twin is None:
        return False
    try:
        with parent_of(root_fd, twin) as (twin_fd, twin_name):
            st = lstat_at(twin_fd, twin_name)
            if (
                st is None
                or not stat.S_ISREG(st.st_mode)
                or (st.st_dev, st.st_ino) == (kept_st.st_dev, kept_st.st_ino)
                or st.st_size != kept_st.st_size
            ):
                return False
            os.link(twin_name, tmp, src_dir_fd=twin_fd, dst_dir_fd=fd, follow_symlinks=False)
    except (OSError, UnsafePath):
        return False
    return True


def _reconcile_restore(root_fd: int, item: Item) -> Entry | None:
    assert item.link_to is not None
    aside, tmp = _tmp_name(item.seq, "aside"), _tmp_name(item.seq, "restore")
    kept_st = _stat_rel(root_fd, item.link_to)
    with parent_of(root_fd, item.src) as (fd, name):
        st = lstat_at(fd, name)
        aside_st = lstat_at(fd, aside)
        if _half_renamed(fd, aside, aside_st, st):
            return None  # as before the rename of the link aside: redo
        independent = (
            st is not None
            and kept_st is not None
            and (st.st_dev, st.st_ino) != (kept_st.st_dev, kept_st.st_ino)
        )
        if independent:  # the copy is in place: drop the link set aside and the copy's name
            assert st is not None
            tmp_st = lstat_at(fd, tmp)
            if tmp_st is not None and (tmp_st.st_dev, tmp_st.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(tmp, dir_fd=fd)  # its link()+unlink() rename into place, cut short
            if aside_st is not None:
                os.unlink(aside, dir_fd=fd)
            os.fsync(fd)
            return {"seq": item.seq, "phase": "done", "recovered": True}
        if aside_st is not None and st is None:
            rename_noreplace(fd, aside, fd, name)  # back to the linked state, then redo
            os.fsync(fd)
    return None


def _half_renamed(
    fd: int, aside: bytes, aside_st: os.stat_result | None, st: os.stat_result | None
) -> bool:
    """A rename between the name and the aside name done as link() + unlink() (filesystems
    without RENAME_NOREPLACE) and cut between the two: both names are one inode. Dropping
    the aside name gives back the state before that rename."""
    if aside_st is None or st is None:
        return False
    if (aside_st.st_dev, aside_st.st_ino) != (st.st_dev, st.st_ino):
        return False
    os.unlink(aside, dir_fd=fd)
    os.fsync(fd)
    return True


def reconcile(root_fd: int, item: Item, intent: Entry | None = None) -> Entry | None:
    """An intent without an outcome (a crash): what the files say happened, or None to redo."""
    try:
        return _reconcile(root_fd, item, intent)
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return None  # its folder is gone or unsafe now: the redo skips it and says why


def _reconcile(root_fd: int, item: Item, intent: Entry | None) -> Entry | None:
    if item.action in apply_dirs.ACTIONS:
        return apply_dirs.reconcile_folder(root_fd, item.seq, item.dst, item.identity)
    if item.action == "hardlink":
        return _reconcile_hardlink(root_fd, item, intent)
    if item.action == "restore":
        return _reconcile_restore(root_fd, item)
    src_st = _stat_rel(root_fd, item.src)
    dst_st = _stat_rel(root_fd, item.dst)
    copied = intent if intent is not None and intent["phase"] == "copied" else None
    if (
        dst_st is not None
        and copied is not None
        and (dst_st.st_dev, dst_st.st_ino) == (copied["dev"], copied["ino"])
    ):
        return _finish_copy(root_fd, item, src_st, dst_st)
    if dst_st is not None and item.identity.matches(dst_st):
        if src_st is not None and (src_st.st_dev, src_st.st_ino) == (dst_st.st_dev, dst_st.st_ino):
            # Interrupted between link() and unlink() of the fallback rename: finish it.
            with parent_of(root_fd, item.src) as (fd, name):
                os.unlink(name, dir_fd=fd)
                os.fsync(fd)
        return _recovered_move(item, "rename", dst_st)
    if (
        dst_st is not None
        and src_st is not None
        and item.identity.matches(src_st)
        and item.identity.matches(dst_st, same_inode=False)
    ):
        # Interrupted cross-device copy after the link into place: equal content finishes it.
        with (
            parent_of(root_fd, item.src) as (sfd, sname),
            parent_of(root_fd, item.dst) as (dfd, dname),
        ):
            if digest_at(sfd, sname) == digest_at(dfd, dname):
                os.unlink(sname, dir_fd=sfd)
                os.fsync(sfd)
                return _recovered_move(item, "copy", dst_st)
    if src_st is not None and item.identity.matches(src_st):
        # Not carried out, the source intact: a cross-device copy cut short is only debris.
        with parent_of(root_fd, item.dst) as (fd, _):
            if lstat_at(fd, _tmp_name(item.seq, "copy")) is not None:
                os.unlink(_tmp_name(item.seq, "copy"), dir_fd=fd)
    return None


def _recovered_move(item: Item, method: str, dst_st: os.stat_result) -> Entry:
    """The outcome a crash kept from the journal, as the files show it: the move is done."""
    return {
        "seq": item.seq,
        "phase": "done",
        "method": method,
        "dev": dst_st.st_dev,
        "ino": dst_st.st_ino,
        "recovered": True,
    }


def _finish_copy(
    root_fd: int, item: Item, src_st: os.stat_result | None, dst_st: os.stat_result
) -> Entry:
    """A cross-device copy is in place (its inode was journaled): drop our temporary name
    and the source, if they are still there."""
    with parent_of(root_fd, item.dst) as (fd, name):
        tmp = _tmp_name(item.seq, "copy")
        tmp_st = lstat_at(fd, tmp)
        if tmp_st is not None and (tmp_st.st_dev, tmp_st.st_ino) == (dst_st.st_dev, dst_st.st_ino):
            os.unlink(tmp, dir_fd=fd)
            os.fsync(fd)
    if src_st is not None and item.identity.matches(src_st):
        with parent_of(root_fd, item.src) as (fd, name):
            os.unlink(name, dir_fd=fd)
            os.fsync(fd)
    return _recovered_move(item, "copy", dst_st)


def _reconcile_hardlink(root_fd: int, item: Item, intent: Entry | None) -> Entry | None:
    assert item.link_to is not None and item.kept is not None
    aside = _tmp_name(item.seq, "aside")
    kept_st = _stat_rel(root_fd, item.link_to)
    with parent_of(root_fd, item.src) as (fd, name):
        st = lstat_at(fd, name)
        aside_st = lstat_at(fd, aside)
        if _half_renamed(fd, aside, aside_st, st):
            return None  # as before the copy was set aside (or after it was put back): redo
        linked = (
            st is not None
            and kept_st is not None
            and (st.st_dev, st.st_ino) == (kept_st.st_dev, kept_st.st_ino)
        )
        if aside_st is not None and item.identity.matches(aside_st):
            if linked and not _unlinked_if_differs(fd, name, aside, kept_st, item.digest):
                os.unlink(aside, dir_fd=fd)
                os.fsync(fd)
                return _hardlink_done(item, aside_st, intent)
            if st is None:
                rename_noreplace(fd, aside, fd, name)  # put the copy back, then redo
                os.fsync(fd)
            return None
        if linked:
            return None if aside_st is not None else _hardlink_done(item, None, intent)
    return None


def _unlinked_if_differs(
    fd: int, name: bytes, aside: bytes, kept_st: os.stat_result | None, planned: bytes | None
) -> bool:
    """Cut short between the link and the removal of the copy set aside: the copy goes only if
    its bytes are the plan's. Otherwise the link is dropped and the copy put back under its
    name; the redo then skips it with its reason."""
    if planned is None:
        return False
    try:
        if digest_at(fd, aside) == planned:
            return False
    except OSError:
        return False
    st = lstat_at(fd, name)
    if st is None or kept_st is None or (st.st_dev, st.st_ino) != (kept_st.st_dev, kept_st.st_ino):
        return False
    os.unlink(name, dir_fd=fd)
    rename_noreplace(fd, aside, fd, name)
    os.fsync(fd)
    return True


def _hardlink_done(item: Item, st: os.stat_result | None, intent: Entry | None) -> Entry:
    entry: Entry = {"seq": item.seq, "phase": "done", "recovered": True}
    if st is not None:
        entry.update(
            mode=st.st_mode,
            uid=st.st_uid,
            gid=st.st_gid,
            atime_ns=st.st_atime_ns,
            mtime_ns=st.st_mtime_ns,
        )
    else:
        # The copy's inode is gone: its mode and atime as the intent recorded them, and the
        # scan's mtime (it matched at apply time) are what rollback gives back.
        copy = (intent or {}).get("copy") or {}
        entry.update(
            mode=int(copy.get("mode", 0o100644)),
            mtime_ns=item.identity.mtime_ns,
            atime_ns=int(copy.get("atime_ns", item.identity.mtime_ns)),
        )
    return entry


def apply_items(
    root: bytes,
    items: Iterable[Item],
    journal_path: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
    retry_skipped: bool = False,
) -> Counter[str]:
    """Carry out `items` in order, journaled; safe to call again after any interruption.
    With `retry_skipped` (rollback), items refused last time are tried again."""
    latest = last_phase(read_journal(journal_path))
    counts: Counter[str] = Counter()
    with Journal(journal_path) as journal, open_root(root) as root_fd:
        todo: list[Item] = []
        restored: Restored = {}
        for item in items:
            entry = latest.get(item.seq)
            if entry is not None and entry["phase"] in UNFINISHED:
                outcome = reconcile(root_fd, item, entry)
                if outcome is not None:
                    journal.add(outcome)
                    entry = outcome
                else:
                    entry = None
            if entry is not None and retry_skipped and entry["phase"] in ("skipped", "failed"):
                entry = None
            if entry is None:
                todo.append(item)
            else:
                counts[_count_key(entry)] += 1
                if item.action == "restore" and entry["phase"] == "done":
                    restored.setdefault((item.identity.dev, item.identity.ino), item.src)
        journal.sync()
        made_dirs = {e["path"] for e in latest.values() if e["phase"] == "mkdir"}
        seen_dirs = {e["path"] for e in latest.values() if e["phase"] == "dirmeta"}
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            _record_dir_times(root_fd, batch, journal, seen_dirs | made_dirs, seen_dirs)
            batch_counts = _apply_batch(root_fd, batch, journal, made_dirs, restored, seen_dirs)
            counts.update(batch_counts)
            on_batch(batch_counts)
    return counts


def _record_dir_times(
    root_fd: int, batch: list[Item], journal: Journal, known: set[str | None], seen: set[str]
) -> None:
    """Journal the times of every existing directory a batch will change, once, so that
    rollback can give them back (a rename updates its directories' mtimes)."""
    for item in batch:
        for path in (item.src, item.dst):
            rel = path.rpartition(b"/")[0]
            key = encode_path(rel)
            if key in known or key is None:
                continue
            known.add(key)
            st = os.fstat(root_fd) if not rel else _stat_rel(root_fd, rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                seen.add(key)
                journal.add(
                    {
                        "seq": f"dir:{key}",
                        "phase": "dirmeta",
                        "path": key,
                        "atime_ns": st.st_atime_ns,
                        "mtime_ns": st.st_mtime_ns,
                    }
                )


def _record_parent_times(
    root_fd: int, rel_dir: bytes, journal: Journal, made: set[str], seen: set[str]
) -> None:
    """A folder about to be made changes its parent's times (the root's, for a new top-level
    folder): journaled first, so that rollback gives them back."""
    parent = rel_dir.rpartition(b"/")[0]
    key = encode_path(parent)
    if key is None or key in made or key in seen:
        return
    st = os.fstat(root_fd) if not parent else _stat_rel(root_fd, parent)
    if st is not None and stat.S_ISDIR(st.st_mode):
        seen.add(key)
        times = {"atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns}
        journal.add({"seq": f"dir:{key}", "phase": "dirmeta", "path": key, **times})


def _count_key(entry: Entry) -> str:
    if entry["phase"] == "done":
        return "done"
    reason = str(entry.get("reason", ""))
    if entry["phase"] == "failed":
        return "errors"
    if reason.startswith("conflict"):
        return "conflicts"
    if reason.startswith("vanished"):
        return "vanished"
    if reason.startswith("unsafe"):
        return "unsafe"
    return "changed"


def _intent(root_fd: int, item: Item) -> Entry:
    entry = item.intent()
    if item.action == "hardlink":
        # Once linked, the copy's own inode is gone with its mode: durable before the link,
        # so that a crash right after it still rolls back to the copy's mode and times.
        st = _stat_rel(root_fd, item.src)
        if st is not None:
            entry["copy"] = {"mode": st.st_mode, "atime_ns": st.st_atime_ns}
    return entry


def _apply_batch(
    root_fd: int,
    batch: list[Item],
    journal: Journal,
    made_dirs: set[str],
    restored: Restored | None = None,
    seen_dirs: set[str] | None = None,
) -> Counter[str]:
    restored = {} if restored is None else restored
    seen = set() if seen_dirs is None else seen_dirs
    for item in batch:
        journal.add(_intent(root_fd, item))
    journal.sync()

    def on_mkdir(rel_dir: bytes) -> None:
        key = encode_path(rel_dir)
        if key not in made_dirs:
            made_dirs.add(key)  # type: ignore[arg-type]
            _record_parent_times(root_fd, rel_dir, journal, made_dirs, seen)
            journal.add({"seq": f"mkdir:{key}", "phase": "mkdir", "path": key})
            journal.sync()

    def on_copied(seq: str) -> Callable[[os.stat_result], None]:
        def record(st: os.stat_result) -> None:
            journal.add({"seq": seq, "phase": "copied", "dev": st.st_dev, "ino": st.st_ino})
            journal.sync()

        return record

    touched: Touched = {}
    counts: Counter[str] = Counter()
    try:
        for item in batch:
            try:
                if item.action == "hardlink":
                    outcome = hardlink(root_fd, item, touched)
                elif item.action == "restore":
                    outcome = restore_copy(root_fd, item, touched, restored)
                elif item.action in apply_dirs.ACTIONS:
                    outcome = apply_dirs.move_folder(
                        root_fd, item.seq, item.action, item.src, item.dst, item.identity,
                        on_mkdir, touched,
                    )  # fmt: skip
                else:
                    outcome = move(
                        root_fd,
                        item.src,
                        item.dst,
                        item.identity,
                        item.seq,
                        on_mkdir,
                        touched,
                        on_copied(item.seq),
                    )
            except (Skip, apply_dirs.Refused) as exc:
                outcome = {"seq": item.seq, "phase": "skipped", "reason": str(exc)}
            except OSError as exc:
                outcome = {"seq": item.seq, "phase": "failed", "reason": f"{exc.strerror or exc}"}
            journal.add(outcome)
            counts[_count_key(outcome)] += 1
        for fd in touched.values():
            os.fsync(fd)  # the renames are durable before their outcome is journaled
    finally:
        for fd in touched.values():
            os.close(fd)
    journal.sync()
    return counts


def items_from_plan(
    rows: Iterable[dict[str, Any]], phase: str, shard: int, kept: dict[bytes, Identity]
) -> list[Item]:
    """The plan rows this phase carries out: moves first (phase 'move'), then hard links."""
    items = []
    for index, row in enumerate(rows):
        action = str(row["action"])
        wanted = action in MOVING if phase == "move" else action == "hardlink"
        if not wanted:
            continue
        link_to = row.get("link_to")
        if row.get("kind") == "dir":  # a folder moved whole (a project): one rename
            action = apply_dirs.MOVE
        items.append(
            Item(
                seq=item_seq(phase, shard, index),
                action=action,
                src=row["src"],
                dst=row["dst"],
                identity=Identity(row["dev"], row["ino"], row["size"], row["mtime_ns"]),
                link_to=link_to,
                kept=kept.get(link_to) if link_to is not None else None,
                digest=row.get("digest") if action == "hardlink" else None,
            )
        )
    return items


def decoded(entry: Entry, key: str) -> bytes:
    value = decode_path(entry.get(key))
    assert value is not None
    return value
