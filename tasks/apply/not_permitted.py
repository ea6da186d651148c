"""Why an apply or rollback item failed with EPERM where the permission bits allow it.

The kernel's "Operation not permitted" reads as a permission problem, and chmod does not
help: an immutable or append-only file or folder (chattr +i / +a) refuses every rename, link
and unlink. After such a failure, the paths the item changes are looked up as every move looks
them up (from the root, never through a symlink) and the first with such a flag is named
(storage.file_flags): 'not permitted: inbox/ is immutable (chattr +i)'.
"""

from __future__ import annotations

import os
import stat

from storage.file_flags import described, flags_of
from tasks.apply.fsops import UnsafePath, lstat_at, parent_of
from tasks.apply.items import Item


def not_permitted(root_fd: int, item: Item) -> str | None:
    """The reason an EPERM of `item` has in its paths' flags; None where none has one (the
    kernel's words stay: a sticky folder, a security module...)."""
    for rel in _changed(root_fd, item):
        found = _flag(root_fd, rel)
        if found is not None:
            return f"not permitted: {found}"
    return None


def _changed(root_fd: int, item: Item) -> list[bytes]:
    """What the item's rename or link changes: its file or folder and the folder holding it,
    the kept file a link points at, and the folder the destination goes into (where that is
    not made yet, the nearest folder above it that is: the one it is made in)."""
    paths = [item.src, item.src.rpartition(b"/")[0]]
    if item.link_to is not None:
        paths.append(item.link_to)
    if item.dst != item.src:
        folder = item.dst.rpartition(b"/")[0]
        while folder and _missing(root_fd, folder):
            folder = folder.rpartition(b"/")[0]
        paths.append(folder)
    return list(dict.fromkeys(paths))


def _missing(root_fd: int, rel: bytes) -> bool:
    try:
        with parent_of(root_fd, rel) as (fd, name):
            return lstat_at(fd, name) is None
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return True


def _flag(root_fd: int, rel: bytes) -> str | None:
    """'inbox/ is immutable (chattr +i)' for `rel` (b"" for the root), or None."""
    if not rel:
        what = described(flags_of(root_fd, b"."))
        return None if what is None else f"the root is {what}"
    try:
        with parent_of(root_fd, rel) as (fd, name):
            what = described(flags_of(fd, name))
            st = lstat_at(fd, name) if what is not None else None
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return None
    if what is None or st is None:
        return None
    slash = "/" if stat.S_ISDIR(st.st_mode) else ""
    return f"{os.fsdecode(rel)}{slash} is {what}"
