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
    # A link inside the root freezes its target (left alone, 'link-target'): this one names a
    # file of its own, so the tree's other files (the non-UTF-8 name above) still move.
    b.file(b"symlinks/linked.txt", b"a symlink in the root names this file\n")
    b.symlink(b"linked.txt", b"symlinks/to-file")
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


def without_dir_inodes(snap: dict[bytes, Entry]) -> dict[bytes, Entry]:
    """A snapshot as a round trip keeps it: a folder apply emptied and removed comes back
    with its mode and times, as a new folder (a new inode number)."""
    return {p: e._replace(ino=0) if e.kind == "dir" else e for p, e in snap.items()}


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


# --- a realistic home folder ------------------------------------------------------------------

# Fixed times: old files from 2015, later arrivals from 2020, undated files last touched in
# June 2021 (their mtime year is 2021); copies under Backup/ are a day newer than their
# originals, so --keep oldest picks the originals.
HOME_OLD_NS = 1_431_000_000 * 10**9  # 2015-05-07
HOME_LATER_NS = 1_600_000_000 * 10**9  # 2020-09-13
HOME_UNDATED_NS = 1_622_505_600 * 10**9  # 2021-06-01
MP3_FRAME = bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)  # MPEG-1 Layer III, 128 kbit/s

# What a careful person leaves alone in this tree by default, by the folder or file that is
# one unit, with the reason code the plan gives it (storage.manifests.REASON_CODES).
HOME_LEFT_ALONE: dict[bytes, str] = {
    b".bashrc": "hidden",
    b".profile": "hidden",
    b".ssh": "credentials",
    b".config": "tool-folder",
    b".local": "tool-folder",
    b".venv": "tool-folder",
    b".cache": "tool-folder",
    b".Trash-0": "tool-folder",
    b"node_modules": "tool-folder",
    b"scripts/__pycache__": "tool-folder",
    b"venvs/tool": "tool-folder",
    b"Downloads/build-cache": "tool-folder",
    b"lost+found": "tool-folder",
    b"$RECYCLE.BIN": "tool-folder",
    b"prefect-home": "data-folder",
    b"Code/myapp": "project",
    b"Code/rusty": "project",
    b".DS_Store": "junk",
    b"Music/The Artist/The Album/.DS_Store": "junk",
    b"Photos/Thumbs.db": "junk",
    b"Photos/._IMG_0001.jpg": "junk",
    b"Documents/desktop.ini": "junk",
    b"link-to-documents": "symlink",
}
HOME_PROJECT = b"Code/myapp"
HOME_ALBUM = b"Music/The Artist/The Album"
HOME_UNTAGGED_ALBUM = b"Music/Garage Band/Demo Tape"
HOME_TAXES = b"Documents/Finance/Taxes 2019"
# Originals and their copies under Backup/ (newer, so --keep oldest keeps the originals).
HOME_PHOTO_COPIES: dict[bytes, bytes] = {
    b"Photos/IMG_0001.jpg": b"Backup/Photos/IMG_0001.jpg",
    b"Documents/notes.txt": b"Backup/notes-copy.txt",
}
HOME_EXIF = {
    b"Photos/IMG_0001.jpg": "2015:05:07 10:11:12",
    b"Photos/IMG_0002.jpg": "2016:08:01 09:00:00",
}
# Files with no date but their mtime (2021-06-01).
HOME_UNDATED = (b"Documents/notes.txt", b"misc/ideas.md", HOME_TAXES + b"/return.pdf")


def jpeg_with_exif(original: str, shade: int) -> bytes:
    """A small JPEG whose EXIF DateTimeOriginal is `original` ("YYYY:MM:DD HH:MM:SS")."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = original  # DateTimeOriginal
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 40, 40)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def mp3_with_tags(title: str, artist: str | None, album: str | None, frames: int = 6) -> bytes:
    """A playable-enough MP3 (MPEG frames mutagen recognises) with ID3v2 tags, if any given."""
    import io

    from mutagen.id3 import ID3, TALB, TIT2, TPE1

    buf = io.BytesIO(MP3_FRAME * frames)
    if artist is None and album is None:
        return buf.getvalue()
    tags = ID3()
    tags.add(TIT2(encoding=3, text=title))
    if artist is not None:
        tags.add(TPE1(encoding=3, text=artist))
    if album is not None:
        tags.add(TALB(encoding=3, text=album))
    tags.save(buf)
    return buf.getvalue()


def make_home_tree(root: Path) -> None:
    """A home folder as people have them: dot-files, tool and state folders, two projects, a
    tagged album and an untagged one, nested folders that mean something, OS junk, photos with
    EXIF, undated files, copies under Backup/, a Prefect home with a live database."""
    root.mkdir(parents=True, exist_ok=True)
    b = _Builder(root, seed=11)

    def put(rel: bytes, content: bytes, mtime_ns: int) -> bytes:
        b.file(rel, content)
        os.utime(b.path(rel), ns=(mtime_ns, mtime_ns))
        return content

    # Dot-files and dot-folders: configuration and secrets.
    put(b".bashrc", b"alias ll='ls -l'\n", HOME_OLD_NS)
    put(b".profile", b"export PATH=$HOME/bin:$PATH\n", HOME_OLD_NS)
    put(b".ssh/id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n", HOME_OLD_NS)
    put(b".ssh/known_hosts", b"example.org ssh-ed25519 AAAA\n", HOME_OLD_NS)
    put(b".config/app/settings.json", b'{"theme": "dark"}\n', HOME_OLD_NS)
    put(b".local/share/recently-used.xbel", b"<xbel/>\n", HOME_OLD_NS)
    # Tool and state folders.
    put(b".venv/pyvenv.cfg", b"home = /usr/bin\n", HOME_OLD_NS)
    put(b".venv/bin/activate", b"# activate\n", HOME_OLD_NS)
    put(b".venv/lib/python3.12/site-packages/six.py", b"# six\n", HOME_OLD_NS)
    put(b"venvs/tool/pyvenv.cfg", b"home = /usr/bin\n", HOME_OLD_NS)
    put(b"venvs/tool/bin/python", b"#!/bin/sh\n", HOME_OLD_NS)
    put(b"node_modules/left-pad/index.js", b"module.exports = 1;\n", HOME_OLD_NS)
    put(b"node_modules/left-pad/package.json", b'{"name": "left-pad"}\n', HOME_OLD_NS)
    put(b"scripts/tool.py", b"print('tool')\n", HOME_OLD_NS)
    put(b"scripts/__pycache__/tool.cpython-312.pyc", b"\x00pyc", HOME_OLD_NS)
    put(b".cache/thumbnails/large/a.png", PNG_MAGIC + b.random_bytes(64), HOME_OLD_NS)
    put(
        b"Downloads/build-cache/CACHEDIR.TAG",
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
        HOME_OLD_NS,
    )
    put(b"Downloads/build-cache/blob.bin", b.random_bytes(64), HOME_OLD_NS)
    put(b"Downloads/manual.pdf", b"%PDF-1.4\n" + b.random_bytes(200), HOME_LATER_NS)
    put(b".Trash-0/files/old.txt", b"thrown away\n", HOME_OLD_NS)
    put(b".Trash-0/info/old.txt.trashinfo", b"[Trash Info]\n", HOME_OLD_NS)
    put(b"$RECYCLE.BIN/S-1-5-21/$R1.txt", b"recycled\n", HOME_OLD_NS)
    put(b"lost+found/#1234", b"orphan\n", HOME_OLD_NS)
    # A Prefect home holding a live database and its write-ahead log.
    put(b"prefect-home/prefect.db", b"SQLite format 3\x00" + bytes(100), HOME_LATER_NS)
    put(b"prefect-home/prefect.db-wal", bytes(64), HOME_LATER_NS)
    put(b"prefect-home/profiles.toml", b'active = "local"\n', HOME_LATER_NS)
    # A git project and a Rust project: each one unit.
    put(b"Code/myapp/.git/HEAD", b"ref: refs/heads/main\n", HOME_OLD_NS)
    put(b"Code/myapp/.git/config", b"[core]\n", HOME_OLD_NS)
    put(b"Code/myapp/setup.py", b"from setuptools import setup\nsetup()\n", HOME_OLD_NS)
    put(b"Code/myapp/package.json", b'{"name": "myapp"}\n', HOME_OLD_NS)
    put(b"Code/myapp/src/myapp/__init__.py", b"VERSION = 1\n", HOME_OLD_NS)
    put(b"Code/myapp/tests/test_app.py", b"def test(): pass\n", HOME_OLD_NS)
    put(b"Code/myapp/docs/logo.png", PNG_MAGIC + b.random_bytes(120), HOME_OLD_NS)
    put(b"Code/myapp/README.md", b"# myapp\n", HOME_OLD_NS)
    put(b"Code/rusty/Cargo.toml", b'[package]\nname = "rusty"\n', HOME_OLD_NS)
    put(b"Code/rusty/src/main.rs", b"fn main() {}\n", HOME_OLD_NS)
    put(b"Code/snippet.py", b"print('loose code')\n", HOME_UNDATED_NS)
    # A tagged album with its cover, and an untagged demo whose folders name it.
    for n, title in ((1, "First"), (2, "Second"), (3, "Third")):
        put(
            HOME_ALBUM + f"/{n:02d} - {title}.mp3".encode(),
            mp3_with_tags(title, "The Artist", "The Album", frames=4 + n),
            HOME_LATER_NS,
        )
    put(HOME_ALBUM + b"/cover.jpg", JPEG_MAGIC + b.random_bytes(300), HOME_LATER_NS)
    put(HOME_ALBUM + b"/.DS_Store", b"\x00\x00\x00\x01Bud1", HOME_LATER_NS)
    for n in (1, 2):
        put(
            HOME_UNTAGGED_ALBUM + f"/{n:02d} - take {n}.mp3".encode(),
            mp3_with_tags("", None, None, frames=10 + n),
            HOME_LATER_NS,
        )
    # Folders whose structure means something.
    put(HOME_TAXES + b"/return.pdf", b"%PDF-1.4\n" + b.random_bytes(400), HOME_UNDATED_NS)
    put(HOME_TAXES + b"/receipts.csv", b"date,amount\n2019-03-01,12\n", HOME_UNDATED_NS)
    put(b"Documents/notes.txt", b"things to remember\n" * 5, HOME_UNDATED_NS)
    put(b"Documents/desktop.ini", b"[.ShellClassInfo]\n", HOME_OLD_NS)
    put(b"misc/ideas.md", b"# ideas\n", HOME_UNDATED_NS)
    # Photos: EXIF dates, a date in the name, OS junk beside them.
    for rel, when in HOME_EXIF.items():
        put(rel, jpeg_with_exif(when, shade=len(rel) * 7 % 255), HOME_OLD_NS)
    put(b"Photos/IMG_20190412_153000.jpg", JPEG_MAGIC + b.random_bytes(200), HOME_OLD_NS)
    put(b"Photos/Thumbs.db", b"\xd0\xcf\x11\xe0thumbs", HOME_OLD_NS)
    put(b"Photos/._IMG_0001.jpg", b"\x00\x05\x16\x07AppleDouble", HOME_OLD_NS)
    put(b".DS_Store", b"\x00\x00\x00\x01Bud1", HOME_OLD_NS)
    # Copies under Backup/, a day newer than their originals.
    for original, copy in HOME_PHOTO_COPIES.items():
        with open(b.path(original), "rb") as fh:
            put(copy, fh.read(), os.stat(b.path(original)).st_mtime_ns + 86_400 * 10**9)
    b.symlink(b"Documents", b"link-to-documents")
