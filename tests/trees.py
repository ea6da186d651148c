"""Trees of files that break naive tools, and snapshots to prove a run changed nothing.

`make_nasty_tree` writes every kind of entry the data-safety rules talk about: names that are
not UTF-8, very long and case-only-different names, hard links, symlinks (inside, outside,
dangling, to a directory), empty files, files that agree on size or on their first 4 KiB but
not on their content, duplicate groups across folders, a sidecar pair, dated names and a PNG
without an extension. Paths are bytes throughout: a `str` path could not name half of them.

`snapshot` walks with directory file descriptors (never a full path), so it also reads entries
whose full path is longer than PATH_MAX.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PREFIX_BYTES = 4096
BIG = 300 * 1024
# 2019-04-12 15:30:00 UTC: files get fixed, distinct mtimes so that "oldest copy" is stable.
BASE_MTIME_NS = 1_555_083_000 * 10**9


def outside_dir(root: Path) -> Path:
    """Where the tree's outward symlink points: beside the root, never inside it."""
    return root.parent / f"{root.name}.outside"


# A directory nested so deep that its full path exceeds PATH_MAX (4096 bytes). Root can read
# any file whatever its mode, so depth is the one way to make an entry that nobody can open by
# its full path (ENAMETOOLONG); building it needs no privileges.
UNREADABLE_DIR = b"/".join([b"deep"] + [b"d" * 250] * 17)


class Entry(NamedTuple):
    kind: str  # file | dir | symlink | other
    digest: str | None  # sha256 of the content, files only
    size: int
    mode: int
    mtime_ns: int
    ino: int
    nlink: int
    target: bytes | None  # symlinks only


class _Builder:
    def __init__(self, root: Path, seed: int) -> None:
        self.root = os.fsencode(root)
        self.rng = random.Random(seed)
        self.tick = 0

    def path(self, rel: bytes) -> bytes:
        return self.root + b"/" + rel

    def random_bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def file(self, rel: bytes, content: bytes) -> bytes:
        full = self.path(rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(content)
        self.tick += 1
        stamp = BASE_MTIME_NS + self.tick * 3_600 * 10**9
        os.utime(full, ns=(stamp, stamp))
        return content

    def hardlink(self, existing: bytes, rel: bytes) -> None:
        os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
        os.link(self.path(existing), self.path(rel))

    def symlink(self, target: bytes, rel: bytes) -> None:
        os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
        os.symlink(target, self.path(rel))


def make_nasty_tree(root: Path, seed: int = 0) -> None:
    """Write the nasty tree under `root` (created if missing) and its outside target."""
    root.mkdir(parents=True, exist_ok=True)
    b = _Builder(root, seed)

    # Names that are not UTF-8 (latin-1 bytes), one of them in a duplicate group.
    b.file(b"caf\xe9.txt", b"latin-1 name\n")
    shared = b.file(b"na\xefve \xff dir/r\xe9sum\xe9.doc", b.random_bytes(700))
    b.file(b"docs/resume copy.doc", shared)

    # Spaces, and very long names: 254 ASCII bytes and 254 bytes of two-byte UTF-8.
    b.file(b"dir with spaces/a file with spaces.txt", b"spaces\n")
    b.file(b"long/" + b"L" * 250 + b".txt", b"long ascii name\n")
    b.file(b"long/" + "\u00e9".encode() * 125 + b".txt", b"long utf-8 name\n")

    # Case-only differences in one folder: both land on the same destination name.
    b.file(b"photos/Photo.JPG", JPEG_MAGIC + b.random_bytes(500))
    b.file(b"photos/photo.jpg", JPEG_MAGIC + b.random_bytes(500))

    # Hard links: a linked pair whose content also exists as a separate copy, and a linked
    # pair alone (one file, so no duplicate at all).
    linked = b.file(b"links/original.dat", b.random_bytes(5000))
    b.hardlink(b"links/original.dat", b"links/hardlink.dat")
    b.file(b"links/separate copy.dat", linked)
    b.file(b"links/solo.dat", b.random_bytes(5000))
    b.hardlink(b"links/solo.dat", b"elsewhere/solo-link.dat")

    # Symlinks: never followed, never counted.
    outside = outside_dir(root)
    outside.mkdir(exist_ok=True)
    (outside / "target.txt").write_bytes(b"outside the root\n")
    b.symlink(b"../caf\xe9.txt", b"symlinks/to-file")
    b.symlink(os.fsencode(outside / "target.txt"), b"symlinks/outside")
    b.symlink(b"../does-not-exist", b"symlinks/dangling")
    b.symlink(b"../photos", b"symlinks/to-dir")

    # Empty files: equal content, but not duplicates unless asked.
    for rel in (b"empty/a.txt", b"empty/b.log", b"empty/sub/c", b"empty.txt"):
        b.file(rel, b"")

    # Same size, different content; same 4 KiB prefix, different after it.
    for name in (b"one", b"two", b"three"):
        b.file(b"same-size/" + name + b".bin", b.random_bytes(1000))
    head = b.random_bytes(PREFIX_BYTES)
    p1 = b.file(b"prefix/p1.bin", head + b.random_bytes(4096))
    b.file(b"prefix/p2.bin", head + b.random_bytes(4096))
    b.file(b"prefix/deeper/p1 again.bin", p1)

    # Duplicate groups nested across folders, under different names.
    text = b.file(b"a/b/c/dup.txt", b"the same words\n" * 40)
    b.file(b"x/dup copy.txt", text)
    b.file(b"x/y/z/dup.txt", text)
    small = b.file(b"a/notes.md", b"# notes\n")
    b.file(b"x/y/notes (1).md", small)

    # Big-ish files: a duplicate pair and a third file that differs only in its last bytes.
    video = b.file(b"big/video.mp4", b.random_bytes(BIG))
    b.file(b"big/video copy.mp4", video)
    b.file(b"big/other.mp4", video[:-16] + b.random_bytes(16))

    # A sidecar pair, dates in names, a PNG without an extension.
    b.file(b"camera/IMG_0001.jpg", JPEG_MAGIC + b.random_bytes(800))
    b.file(b"camera/IMG_0001.xmp", b"<x:xmpmeta/>\n")
    b.file(b"camera/IMG_20190412_153000.jpg", JPEG_MAGIC + b.random_bytes(800))
    b.file(b"docs/2020-01-15 invoice.pdf", b"%PDF-1.4\n" + b.random_bytes(300))
    b.file(b"Screenshot 2021-03-04 at 10.11.12.png", PNG_MAGIC + b.random_bytes(300))
    b.file(b"misc/picture", PNG_MAGIC + b.random_bytes(300))


def make_unreadable(root: Path) -> bytes:
    """Write UNREADABLE_DIR (holding one file) under `root`, by relative names; return it."""
    rel = UNREADABLE_DIR
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in rel.split(b"/"):
            os.mkdir(part, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open(b"lost.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
        os.write(out, b"too deep to open by name\n")
        os.close(out)
    finally:
        os.close(fd)
    return rel


def snapshot(root: Path) -> dict[bytes, Entry]:
    """Every entry under `root` (relative bytes path -> lstat facts and content digest), and
    the root itself under b"" (its mtime changes when a name is added or removed in it)."""
    st = os.lstat(root)
    top = Entry("dir", None, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ino, st.st_nlink, None)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return {b"": top, **dict(_walk(fd, b""))}
    finally:
        os.close(fd)


def _walk(dir_fd: int, prefix: bytes) -> Iterator[tuple[bytes, Entry]]:
    for name in sorted(os.listdir(dir_fd)):
        name_b = os.fsencode(name)
        rel = prefix + name_b
        st = os.stat(name_b, dir_fd=dir_fd, follow_symlinks=False)
        kind, digest, target = _kind(st.st_mode), None, None
        if kind == "file":
            digest = _digest(name_b, dir_fd)
        elif kind == "symlink":
            target = os.readlink(name_b, dir_fd=dir_fd)
        yield (
            rel,
            Entry(
                kind, digest, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ino, st.st_nlink, target
            ),
        )
        if kind == "dir":
            child = os.open(name_b, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                yield from _walk(child, rel + b"/")
            finally:
                os.close(child)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _digest(name: bytes, dir_fd: int) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def reachable_files(snap: dict[bytes, Entry]) -> dict[bytes, Entry]:
    """The regular files a scan can reach: all but the one under UNREADABLE_DIR."""
    hidden = UNREADABLE_DIR + b"/"
    return {
        path: entry
        for path, entry in snap.items()
        if entry.kind == "file" and not path.startswith(hidden)
    }


def expected_duplicate_inodes(
    snap: dict[bytes, Entry], include_empty: bool = False
) -> set[frozenset[int]]:
    """Groups of equal content, by inode (hard links are one file), computed from a snapshot."""
    by_content: dict[str, set[int]] = {}
    for entry in reachable_files(snap).values():
        if entry.size > 0 or include_empty:
            by_content.setdefault(entry.digest or "", set()).add(entry.ino)
    return {frozenset(inodes) for inodes in by_content.values() if len(inodes) > 1}
