"""Folders moved whole (a project to Projects/<name>): one rename, journaled like a file move.

A folder moves only by renameat2(RENAME_NOREPLACE): one atomic step that never replaces
anything, so a crash leaves it either moved or not, and the journal plus the folder's
(dev, ino) tell which. Across devices, or on a filesystem without that flag, the folder is
not moved (a copy of a whole tree could not be made safe the same way) and says why.

Apply re-checks the folder against the scan: the same (dev, ino), still a folder, and the
same mtime (a name added or removed at its top since the scan means someone is working in it:
the plan may be stale). Rollback moves it back if it is the same folder, whatever was done
inside it since: its contents are the user's and travel with it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from storage.journal import Entry
from tasks.apply.batch_dirs import BatchDirs
from tasks.apply.fsops import (
    Identity,
    NoReplaceUnsupported,
    UnsafePath,
    lstat_at,
    parent_of,
    rename_dir_noreplace,
)
from tasks.apply.items import MOVE_DIR, Item, Skip


def _same(identity: Identity, st: os.stat_result, check_mtime: bool) -> bool:
    if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != (identity.dev, identity.ino):
        return False
    return not check_mtime or st.st_mtime_ns == identity.mtime_ns


def move_folder(
    root_fd: int, item: Item, on_mkdir: Callable[[bytes], None], touched: BatchDirs
) -> Entry:
    """Rename the folder at `src` to `dst` if it is still the folder planned; never replace."""
    since, src, dst, identity = item.since, item.src, item.dst, item.identity
    try:
        with parent_of(root_fd, src) as (src_fd, src_name):
            st = lstat_at(src_fd, src_name)
            if st is None:
                raise Skip(f"vanished since {since}")
            if not _same(identity, st, check_mtime=item.action == MOVE_DIR):
                raise Skip(f"changed since {since}")
            with parent_of(root_fd, dst, create=True, before_mkdir=on_mkdir) as (dst_fd, name):
                if lstat_at(dst_fd, name) is not None:
                    raise Skip("conflict: destination exists")
                _rename(src_fd, src_name, dst_fd, name)
                after = lstat_at(dst_fd, name)
                touched.remember(src_fd)
                touched.remember(dst_fd)
    except FileNotFoundError:
        raise Skip(f"vanished since {since}") from None
    except UnsafePath as exc:
        raise Skip(f"unsafe path: {exc.strerror}") from None
    assert after is not None
    return {
        "seq": item.seq,
        "phase": "done",
        "method": "rename",
        "dev": after.st_dev,
        "ino": after.st_ino,
    }


def _rename(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
    try:
        rename_dir_noreplace(src_fd, src, dst_fd, dst)
    except FileExistsError:
        raise Skip("conflict: destination exists") from None
    except NoReplaceUnsupported:
        raise Skip("this filesystem cannot rename a folder without risk of replacing") from None
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise Skip("on another device: a folder moves by one rename only") from None
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise Skip("conflict: destination exists") from None
        raise


def reconcile_folder(root_fd: int, seq: str, dst: bytes, identity: Identity) -> Entry | None:
    """After a crash: done if the folder stands at `dst`, else None (the redo re-checks it)."""
    try:
        with parent_of(root_fd, dst) as (fd, name):
            st = lstat_at(fd, name)
    except (FileNotFoundError, NotADirectoryError, OSError):
        return None
    if st is None or not _same(identity, st, check_mtime=False):
        return None
    return {
        "seq": seq,
        "phase": "done",
        "method": "rename",
        "dev": st.st_dev,
        "ino": st.st_ino,
        "recovered": True,
    }
