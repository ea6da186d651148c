"""Local hard links: a duplicate copy replaced by a link to the kept file (apply), and the
copy it replaced given back (rollback's restore). Both re-check the files first, never
overwrite, and leave no temporary name behind a failure (tasks.apply.local runs them).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from storage.journal import Entry
from tasks.apply.batch_dirs import BatchDirs
from tasks.apply.fsops import (
    UnsafePath,
    check_room,
    copy_beside,
    digest_at,
    lstat_at,
    parent_of,
    rename_noreplace,
    temp_name,
)
from tasks.apply.items import Item, Skip


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


def mode_conflict(copy: os.stat_result, kept: os.stat_result) -> str | None:
    """Why a copy of another mode is not linked: a link has one mode too, so a private 0600
    copy linked to a 0644 kept copy would become readable by everyone (util-linux hardlink
    refuses such pairs too, unless told)."""
    mode, kept_mode = stat.S_IMODE(copy.st_mode), stat.S_IMODE(kept.st_mode)
    if mode == kept_mode:
        return None
    kept_one = f"the kept copy's {kept_mode:04o}"
    return f"conflict: mode {mode:04o}, {kept_one}: not linked (a link has one mode)"


def hardlink(root_fd: int, item: Item, touched: BatchDirs) -> Entry:
    """Replace a duplicate copy by a hard link to the kept file: rename the copy aside, check
    that its bytes and the kept file's are still the plan's, link, then remove the aside name;
    a failure or a mismatch in between puts the copy back."""
    assert item.link_to is not None and item.kept is not None
    aside = temp_name(item.seq, "aside")
    with _skips("scan"), parent_of(root_fd, item.link_to) as (kept_fd, kept_name):
        kept_st = _kept_as_recorded(kept_fd, kept_name, item, "kept copy changed or vanished")
        with parent_of(root_fd, item.src) as (fd, name):
            st = lstat_at(fd, name)
            if st is None:
                raise Skip("vanished since scan")
            if not item.identity.matches(st):
                raise Skip("changed since scan")
            if st.st_dev != kept_st.st_dev:
                raise Skip("kept copy is on another device")
            if (st.st_uid, st.st_gid) != (kept_st.st_uid, kept_st.st_gid):
                # A link has one owner: the copy's owner would lose their file to the kept
                # copy's (util-linux hardlink refuses such pairs too, unless told).
                raise Skip(
                    f"conflict: owned by {st.st_uid}:{st.st_gid}, the kept copy by"
                    f" {kept_st.st_uid}:{kept_st.st_gid}: not linked (a link has one owner)"
                )
            conflict = mode_conflict(st, kept_st)
            if conflict is not None:
                raise Skip(conflict)
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
            touched.remember(fd)
    return {
        "seq": item.seq,
        "phase": "done",
        "mode": st.st_mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "atime_ns": st.st_atime_ns,
        "mtime_ns": st.st_mtime_ns,
    }


def _kept_as_recorded(kept_fd: int, kept_name: bytes, item: Item, why: str) -> os.stat_result:
    """The kept copy a hard link points to (or will), if it is still the file the item
    recorded; else the item is skipped: linking to, or restoring from, another file is not safe."""
    assert item.kept is not None
    kept_st = lstat_at(kept_fd, kept_name)
    if kept_st is None or not item.kept.matches(kept_st):
        raise Skip(why)
    return kept_st


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
    root_fd: int, item: Item, touched: BatchDirs, restored: Restored | None = None
) -> Entry:
    """Undo of hardlink: the path becomes an independent copy again, with the mode and times
    the replaced copy had (its inode number cannot come back)."""
    restored = {} if restored is None else restored
    original = (item.identity.dev, item.identity.ino)
    assert item.link_to is not None and item.kept is not None and item.meta is not None
    tmp, aside = temp_name(item.seq, "restore"), temp_name(item.seq, "aside")
    with _skips("apply"), parent_of(root_fd, item.link_to) as (kept_fd, kept_name):
        kept_st = _kept_as_recorded(
            kept_fd, kept_name, item, "kept copy changed or vanished since apply"
        )
        with parent_of(root_fd, item.src) as (fd, name):
            st = lstat_at(fd, name)
            if st is None or (st.st_dev, st.st_ino) != (kept_st.st_dev, kept_st.st_ino):
                raise Skip("changed since apply")
            if lstat_at(fd, tmp) is not None:
                os.unlink(tmp, dir_fd=fd)  # our own leftover from an interrupted attempt
            meta = item.meta
            if not _link_to_twin(root_fd, restored.get(original), kept_st, fd, tmp):
                check_room(fd, kept_st.st_size)
                times = (int(meta["atime_ns"]), int(meta["mtime_ns"]))
                owner = (meta["uid"], meta["gid"]) if "uid" in meta else None
                copy_beside(kept_fd, kept_name, fd, tmp, int(meta["mode"]), *times, owner=owner)
            _swap_in(fd, name, tmp, aside)
            touched.remember(fd)
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
