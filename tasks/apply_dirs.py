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
from tasks.fsops import (
    Identity,
    NoReplaceUnsupported,
    UnsafePath,
    lstat_at,
    parent_of,
    rename_dir_noreplace,
)

MOVE = "move-dir"  # apply: the plan's folder move
RESTORE = "restore-dir"  # rollback: the same folder back where it was
ACTIONS = (MOVE, RESTORE)


class Refused(Exception):
    """The folder is not moved, for a reason the report shows."""


def _same(identity: Identity, st: os.stat_result, check_mtime: bool) -> bool:
    if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != (identity.dev, identity.ino):
        return False
    return not check_mtime or st.st_mtime_ns == identity.mtime_ns


def move_folder(
    root_fd: int,
    seq: str,
    action: str,
    src: bytes,
    dst: bytes,
    identity: Identity,
    on_mkdir: Callable[[bytes], None],
    touched: dict[tuple[int, int], int],
) -> Entry:
    """Rename the folder at `src` to `dst` if it is still the folder planned; never replace."""
    since = "scan" if action == MOVE else "apply"
    try:
        with parent_of(root_fd, src) as (src_fd, src_name):
            st = lstat_at(src_fd, src_name)
            if st is None:
                raise Refused(f"vanished since {since}")
            if not _same(identity, st, check_mtime=action == MOVE):
                raise Refused(f"changed since {since}")
            with parent_of(root_fd, dst, create=True, before_mkdir=on_mkdir) as (dst_fd, name):
                if lstat_at(dst_fd, name) is not None:
                    raise Refused("conflict: destination exists")
                _rename(src_fd, src_name, dst_fd, name)
                after = lstat_at(dst_fd, name)
                for fd in (src_fd, dst_fd):
                    fst = os.fstat(fd)
                    if (fst.st_dev, fst.st_ino) not in touched:
                        touched[(fst.st_dev, fst.st_ino)] = os.dup(fd)
    except FileNotFoundError:
        raise Refused(f"vanished since {since}") from None
    except UnsafePath as exc:
        raise Refused(f"unsafe path: {exc.strerror}") from None
    assert after is not None
    return {
        "seq": seq,
        "phase": "done",
        "method": "rename",
        "dev": after.st_dev,
        "ino": after.st_ino,
    }


def _rename(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
    try:
        rename_dir_noreplace(src_fd, src, dst_fd, dst)
    except FileExistsError:
        raise Refused("conflict: destination exists") from None
    except NoReplaceUnsupported:
        raise Refused("this filesystem cannot rename a folder without risk of replacing") from None
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise Refused("on another device: a folder moves by one rename only") from None
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise Refused("conflict: destination exists") from None
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
