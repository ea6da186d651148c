"""A local root's identity: the (st_dev, st_ino) of its folder, reached without following a link.

A root is authorized as a path, but a path is only a name: once an operation has started, the
folder it names can be renamed away and a symlink to another folder put in its place (issue 12
point 2). So the identity is fixed when the root is authorized (the API, or the flow for the
CLI's own runs) and checked again before every step that reads or changes files: before scan,
after it, before apply and every apply shard, before rollback and every rollback journal.

The walk opens one component at a time from `/`, each relative to the one before, with
O_NOFOLLOW|O_DIRECTORY: a component that is a symlink (or no longer a folder) fails to open
instead of being followed, so a link anywhere on the way is refused, not only at the end.
"""

from __future__ import annotations

import errno
import os

from storage.errors import RootError
from storage.objects import is_object_url

Identity = list[int]  # [st_dev, st_ino]: a list, so that it survives JSON and flow parameters

# O_PATH (Linux) needs only search permission on each folder, as a path lookup does.
_FLAGS = os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_PATH", os.O_RDONLY) | os.O_CLOEXEC


class RootChanged(RootError):
    """The root's path no longer leads to the folder that was authorized."""


def _shown(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def open_root(root: str) -> int:
    """A descriptor of the folder `root` names, reached without following any symlink."""
    if not os.path.isabs(root):
        raise RootError(f"root {_shown(root)} is not an absolute path")
    fd = os.open("/", _FLAGS)
    walked = ""
    try:
        for part in (p for p in root.split("/") if p):
            walked += "/" + part
            try:
                child = os.open(part, _FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RootChanged(
                        f"root {_shown(root)}: {_shown(walked)} is a symlink or not a folder "
                        "(it was replaced since the root was authorized); nothing was touched"
                    ) from None
                raise RootError(f"root {_shown(root)} cannot be opened: {exc.strerror}") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def identify(root: str) -> Identity | None:
    """The identity of a local root (None for an object-store root: a bucket has no inode)."""
    if is_object_url(root):
        return None
    fd = open_root(root)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return [st.st_dev, st.st_ino]


def check_identity(root: str, expected: Identity | None) -> None:
    """RootChanged unless `root` still leads, link-free, to the folder `expected` names.

    Without an expected identity (a record written before identities were kept), the path
    must still be free of links: that alone refuses a root swapped for a symlink.
    """
    found = identify(root)
    if expected is None or found is None or list(expected) == found:
        return
    raise RootChanged(
        f"root {_shown(root)} is no longer the folder that was authorized (it was moved or "
        "replaced since); nothing was touched"
    )
