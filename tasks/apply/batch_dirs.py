"""The folders one batch changes: checked afresh for every item, opened once per batch.

Every item's folders are checked again, so a folder swapped for a symlink between two items
of a batch is refused as it would be in a batch of one. The first time a batch meets a folder
it looks it up from the root (tasks.apply.fsops.open_parent: one openat2() that refuses
symlinks and escapes, or the walk) and keeps one descriptor per distinct folder (by device
and inode). The next items in that folder re-verify the kept descriptor's chain instead of
looking the path up again: the kernel's own path of the descriptor (readlink of
/proc/self/fd/N, one system call instead of openat2, fstat and close; on a descriptor of that
link opened once, O_PATH, so that the kernel need not look N up every time) must still be the
root's path and the folder's. A dentry's path is made of the real folders above it, never a
symlink, so that path is what openat2 from the root, refusing symlinks, would reach now; a
folder moved, or any folder above it swapped for a symlink or another folder, or removed,
changes it, and the item then takes the full lookup (which refuses, or finds the new folder).
The root's path is read when the batch starts: were the root itself moved mid-batch, a kept
folder is used only where it is still under the root's path, never elsewhere.

The batch fsyncs each kept folder once, after its renames and before their outcomes are
journaled. At most LIMIT are kept: a batch that reaches it makes them durable early (`full`,
then `sync`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tasks.apply.fsops import open_parent, split_clean

LIMIT = 256  # folders kept, two descriptors each: below the usual 1,024 a process may open
SYNC_THREADS = 8  # fsyncs at once (each waits on the disk, the GIL released)
_DELETED = b" (deleted)"  # what the kernel appends to the path of a removed folder
_NOT_NAMES = frozenset((b"", b".", b".."))


class BatchDirs:
    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._kept: dict[tuple[int, int], int] = {}
        self.full = False  # LIMIT descriptors kept: `sync` them before the next item
        # folder -> (its kept descriptor, where to read that descriptor's /proc/self/fd link
        # (a descriptor of the link itself and b"", or /proc/self/fd's and its name; None for
        # the root's own folder: the root's descriptor), and the path the kernel must give it)
        self._folders: dict[bytes, tuple[int, int | None, bytes, bytes]] = {}
        self._links: dict[int, int] = {}  # kept descriptor -> O_PATH descriptor of its link
        self._proc = _open_proc_fds()
        self._root_path = _path_of(self._proc, b"%d" % root_fd)

    def parent(
        self,
        rel: bytes,
        create: bool = False,
        before_mkdir: Callable[[bytes], None] = lambda rel_dir: None,
    ) -> tuple[int, bytes]:
        """(descriptor of the folder holding `rel`, its last component), as
        fsops.parent_of; the descriptor stays the batch's (do not close it)."""
        folder, slash, name = rel.rpartition(b"/")
        known = self._folders.get(folder) if folder or not slash else None
        # A known folder passed split_clean: `rel` is clean if its last component is.
        if known is not None and name not in _NOT_NAMES and b"\0" not in name:
            fd, link_dir, link_name, path = known
            if link_dir is None:
                return fd, name
            try:  # _path_of's readlink, twice a move
                if os.readlink(link_name, dir_fd=link_dir) == path:
                    return fd, name
            except OSError:
                pass
        return self._look_up(rel, create, before_mkdir)

    def _look_up(
        self, rel: bytes, create: bool, before_mkdir: Callable[[bytes], None]
    ) -> tuple[int, bytes]:
        folder, name = split_clean(rel)
        fd = open_parent(self.root_fd, folder, rel, create, before_mkdir)
        st = os.fstat(fd)
        kept = self._kept.setdefault((st.st_dev, st.st_ino), fd)
        if kept != fd:
            os.close(fd)
        self.full = len(self._kept) >= LIMIT
        if not folder:
            self._folders[folder] = (kept, None, b"", b"")
        elif self._proc is not None and self._root_path and not folder.endswith(_DELETED):
            path = self._root_path.rstrip(b"/") + b"/" + folder
            self._folders[folder] = (kept, *self._link_of(kept, self._proc), path)
        return kept, name

    def _link_of(self, kept: int, proc: int) -> tuple[int, bytes]:
        """Where to read the kept descriptor's /proc/self/fd link: opened itself (O_PATH),
        readlink of b"" on it skips looking the name up in /proc, a third of the readlink's
        time; else by its name in /proc/self/fd."""
        link = self._links.get(kept)
        if link is None:
            try:
                link = os.open(b"%d" % kept, _LINK_FLAGS, dir_fd=proc)
            except OSError:
                return proc, b"%d" % kept
            self._links[kept] = link
        return link, b""

    def remember(self, dir_fd: int) -> None:
        """A folder changed through a descriptor of the caller's: fsynced with the others."""
        st = os.fstat(dir_fd)
        if (st.st_dev, st.st_ino) not in self._kept:
            self._kept[(st.st_dev, st.st_ino)] = os.dup(dir_fd)
            self.full = len(self._kept) >= LIMIT

    def sync(self) -> None:
        """Make every change in the kept folders durable, then let them go. The folders are
        fsynced side by side: each waits for its own blocks to be written (a folder that took
        thousands of names has thousands dirty), and the disk takes them all at once."""
        try:
            fds = list(self._kept.values())
            if len(fds) == 1:
                os.fsync(fds[0])
            elif fds:
                with ThreadPoolExecutor(min(len(fds), SYNC_THREADS)) as pool:
                    for _ in pool.map(os.fsync, fds):  # the first error, once all are done
                        pass
        finally:
            self._release()

    def _release(self) -> None:
        kept, self._kept = list(self._kept.values()), {}
        links, self._links = list(self._links.values()), {}
        self._folders.clear()
        self.full = False
        for fd in links + kept:  # a link before its folder: it reads that descriptor number
            os.close(fd)

    def close(self) -> None:
        self._release()
        if self._proc is not None:
            os.close(self._proc)
            self._proc = None


_PROC_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_LINK_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_proc_fds() -> int | None:
    """This process's descriptor folder, where /proc is mounted (else every item takes the
    full lookup)."""
    try:
        return os.open("/proc/self/fd", _PROC_FLAGS)
    except OSError:
        return None


def _path_of(proc: int | None, fd_name: bytes) -> bytes | None:
    """The kernel's path of an open folder (d_path), by its descriptor's name in
    /proc/self/fd; None where it cannot say."""
    if proc is None:
        return None
    try:
        return os.readlink(fd_name, dir_fd=proc)
    except OSError:
        return None
