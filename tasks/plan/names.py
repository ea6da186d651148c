"""Names in the plan: which paths are taken, and free variants ("name (1).jpg") of taken ones.

Names collide when they differ only in case (case-insensitive filesystems), and no component
may be longer than NAME_MAX bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

NAME_MAX = 255


class Named(Protocol):
    @property
    def path(self) -> bytes: ...


def key(path: bytes) -> str:
    """Destinations collide when they differ only in case (case-insensitive filesystems)."""
    # Same as os.fsdecode(path).casefold() on Linux, without its per-call checks: the plan
    # computes this a few times for each of a million files.
    return path.decode("utf-8", "surrogateescape").casefold()


N = TypeVar("N", bound=Named)


class Names(Generic[N]):
    """Every path taken: at scan time, or by a planned destination. Case-insensitive."""

    def __init__(self, existing: Iterable[N]) -> None:
        # Sorted, so that of two scanned paths differing only in case the same one is seen.
        self.taken: dict[str, N] = {key(f.path): f for f in sorted(existing, key=lambda f: f.path)}
        # The path as it is spelled by what holds each key (scanned, or claimed): a name taken
        # but for case names its holder (tasks.plan.reasons.renamed).
        self.spelled: dict[str, bytes] = {k: f.path for k, f in self.taken.items()}
        # Folders that exist or will: a file may not take a folder's name, nor the reverse.
        self.dirs: set[str] = set()
        for k in self.taken:
            self._add_parents(k)
        # Per (directory, name): every "name (n)" variant below this n was found taken, and
        # names are never released, so the next search starts here rather than at 1 (k
        # conflicts on one name, e.g. thousands of __init__.py, would cost k*k/2 probes).
        self._first_unknown: dict[tuple[bytes, bytes], int] = {}
        # Destinations files want as they are: never a variant's, so that a file named
        # "IMG (1).jpg" keeps its name when another "IMG.jpg" is renamed beside it.
        self.wanted: set[str] = set()

    def _add_parents(self, k: str) -> None:
        parts = k.split("/")[:-1]
        for i in range(len(parts), 0, -1):
            folder = "/".join(parts[:i])
            if folder in self.dirs:
                break
            self.dirs.add(folder)

    def claim(self, dst: bytes, who: N) -> None:
        k = key(dst)
        self.taken[k] = who
        self.spelled[k] = dst
        self._add_parents(k)

    def occupant(self, dst: bytes) -> N | None:
        return self.taken.get(key(dst))

    def holder(self, dst: bytes) -> bytes | None:
        """The path, as spelled, of the file that has `dst` (None: free, or a folder's)."""
        return self.spelled.get(key(dst))

    def is_free(self, dst: bytes) -> bool:
        k = key(dst)
        return k not in self.taken and k not in self.dirs

    def blocker(self, dst: bytes) -> N | None:
        """What stands where one of the destination's folders would have to be: a file, or a
        folder left alone (nothing may be put inside one), or None."""
        parts = key(dst).split("/")[:-1]
        for i in range(len(parts)):
            found = self.taken.get("/".join(parts[: i + 1]))
            if found is not None:
                return found
        return None

    def claim_folder(self, folder: bytes) -> None:
        """A folder the plan creates as a whole (an album's): no file may take its name."""
        self._add_parents(key(folder) + "/")

    def reserve(self, dst: bytes) -> None:
        """A destination a file wants as it is: free_variant never gives it to another."""
        self.wanted.add(key(dst))

    def free_variant(self, directory: bytes, name: bytes, keep_ext: bool = True) -> bytes:
        """A free "name (n)" in `directory` that no file wants as its own: before the
        extension, unless the name is a folder's (`keep_ext` False: "Vol. 2 (1)", not "Vol
        (1). 2")."""
        stem, dot, ext = name.rpartition(b".")
        if not dot or not stem or not keep_ext:  # no extension, or a dot-file such as .bashrc
            stem, ext = name, b""
        if len(ext) + 1 > NAME_MAX // 2:  # an "extension" too long to keep whole
            stem, ext = name, b""
        suffix_ext = b"." + ext if ext else b""
        n = self._first_unknown.get((directory, name), 1)
        while True:
            marker = f" ({n})".encode()
            room = NAME_MAX - len(marker) - len(suffix_ext)
            candidate = truncate(stem, room) + marker + suffix_ext
            dst = directory + b"/" + candidate if directory else candidate
            if self.is_free(dst) and key(dst) not in self.wanted:
                self._first_unknown[(directory, name)] = n
                return dst
            n += 1


def truncate(stem: bytes, room: int) -> bytes:
    if len(stem) <= room:
        return stem
    cut = stem[:room]
    # Do not leave half of a UTF-8 sequence behind when the name was valid UTF-8.
    try:
        stem.decode("utf-8")
    except UnicodeDecodeError:
        return cut
    return cut.decode("utf-8", "ignore").encode("utf-8")


def fit(dst: bytes) -> bytes:
    """Cut components a template or a sidecar made longer than NAME_MAX, keeping extensions."""
    parts = dst.split(b"/")
    if all(len(p) <= NAME_MAX for p in parts):
        return dst
    *dirs, name = parts
    stem, dot, ext = name.rpartition(b".")
    if not dot or not stem or len(ext) + 1 > NAME_MAX // 2:
        stem, dot, ext = name, b"", b""
    name = truncate(stem, NAME_MAX - len(dot) - len(ext)) + dot + ext
    return b"/".join([*(truncate(d, NAME_MAX) for d in dirs), name])
