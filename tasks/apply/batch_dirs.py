"""The folders one batch changes: looked up afresh for every item, opened once per batch.

Every item's folders are looked up again from the root (tasks.apply.fsops.open_parent: one
openat2() that refuses symlinks and escapes, or the walk), so a folder swapped for a symlink
between two items of a batch is refused as it would be in a batch of one. What a batch keeps
is one descriptor per distinct folder (by device and inode): a lookup that finds a folder
already kept hands back the kept descriptor and closes its own, and the batch fsyncs each
kept folder once, after its renames and before their outcomes are journaled. At most LIMIT
are kept: a batch that reaches it makes them durable early (`full`, then `sync`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from tasks.apply.fsops import open_parent, split_clean

LIMIT = 256  # far below the usual 1,024 descriptors a process may open


class BatchDirs:
    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._kept: dict[tuple[int, int], int] = {}

    def parent(
        self,
        rel: bytes,
        create: bool = False,
        before_mkdir: Callable[[bytes], None] = lambda rel_dir: None,
    ) -> tuple[int, bytes]:
        """(descriptor of the folder holding `rel`, its last component), as
        fsops.parent_of; the descriptor stays the batch's (do not close it)."""
        folder, name = split_clean(rel)
        fd = open_parent(self.root_fd, folder, rel, create, before_mkdir)
        st = os.fstat(fd)
        kept = self._kept.setdefault((st.st_dev, st.st_ino), fd)
        if kept != fd:
            os.close(fd)
        return kept, name

    def remember(self, dir_fd: int) -> None:
        """A folder changed through a descriptor of the caller's: fsynced with the others."""
        st = os.fstat(dir_fd)
        if (st.st_dev, st.st_ino) not in self._kept:
            self._kept[(st.st_dev, st.st_ino)] = os.dup(dir_fd)

    @property
    def full(self) -> bool:
        return len(self._kept) >= LIMIT

    def sync(self) -> None:
        """Make every change in the kept folders durable, then let them go."""
        try:
            for fd in self._kept.values():
                os.fsync(fd)
        finally:
            self.close()

    def close(self) -> None:
        kept, self._kept = list(self._kept.values()), {}
        for fd in kept:
            os.close(fd)
