"""tasks.apply.fsops: renames that never replace, paths that never leave the root."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.apply import fsops
from tasks.apply.fsops import (
    Identity,
    UnsafePath,
    copy_beside,
    open_root,
    parent_of,
    rename_noreplace,
)
from tests.trees import snapshot

RENAMES = ["renameat2", "link-unlink"]


@pytest.fixture(params=RENAMES)
def rename_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways rename_noreplace works: renameat2(RENAME_NOREPLACE), and link() + unlink()
    where the C library or the filesystem has no such flag."""
    if request.param == "link-unlink":
        monkeypatch.setattr(fsops, "_renameat2", None)
    elif fsops._renameat2 is None:
        pytest.skip("this C library has no renameat2")
    return str(request.param)


@pytest.fixture(params=["openat2", "walk"])
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a path is looked up under the root: one openat2() with RESOLVE_NO_SYMLINKS |
    RESOLVE_BENEATH, and the walk one folder at a time where the kernel has no openat2."""
    if request.param == "walk":
        monkeypatch.setattr(fsops, "_openat2", None)
    elif fsops._openat2 is None:
        pytest.skip("no openat2 here")
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    directory = tmp_path / "root"
    directory.mkdir()
    with open_root(os.fsencode(directory)) as fd:
        yield directory, fd


def write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_rename_noreplace_moves_the_inode(rename_kind: str, root: tuple[Path, int]) -> None:
    directory, fd = root
    write(directory / "a.txt", b"content")
    ino = os.lstat(directory / "a.txt").st_ino

    rename_noreplace(fd, b"a.txt", fd, b"b.txt")

    assert not (directory / "a.txt").exists()
    assert (directory / "b.txt").read_bytes() == b"content"
    assert os.lstat(directory / "b.txt").st_ino == ino
    assert os.lstat(directory / "b.txt").st_nlink == 1


@pytest.mark.parametrize("occupant", ["file", "empty file", "dangling symlink", "directory"])
def test_rename_noreplace_never_replaces(
    rename_kind: str, root: tuple[Path, int], occupant: str
) -> None:
    directory, fd = root
    write(directory / "src.txt", b"mine")
    target = directory / "dst"
    if occupant == "file":
        target.write_bytes(b"theirs")
    elif occupant == "empty file":
        target.write_bytes(b"")
    elif occupant == "dangling symlink":
        target.symlink_to("nowhere")
    else:
        target.mkdir()
        (target / "inside").write_bytes(b"theirs")
    before = snapshot(directory)

    with pytest.raises(FileExistsError):
        rename_noreplace(fd, b"src.txt", fd, b"dst")

    assert snapshot(directory) == before


def test_fallback_is_taken_when_the_filesystem_refuses_the_flag(
    root: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """renameat2 failing with EINVAL (a filesystem without RENAME_NOREPLACE) falls back to
    link() + unlink(), which refuses an existing name just the same."""
    calls = []

    def refusing(*args: object) -> int:
        calls.append(args)
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(fsops, "_renameat2", refusing)
    directory, fd = root
    write(directory / "a", b"first")
    write(directory / "b", b"second")

    with pytest.raises(FileExistsError):
        rename_noreplace(fd, b"a", fd, b"b")
    rename_noreplace(fd, b"a", fd, b"c")

    assert len(calls) == 2
    assert (directory / "b").read_bytes() == b"second"
    assert (directory / "c").read_bytes() == b"first"
    assert not (directory / "a").exists()


def test_other_renameat2_errors_are_raised(
    root: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object) -> int:
        ctypes.set_errno(errno.EACCES)
        return -1

    monkeypatch.setattr(fsops, "_renameat2", failing)
    directory, fd = root
    write(directory / "a", b"x")

    with pytest.raises(PermissionError):
        rename_noreplace(fd, b"a", fd, b"b")
    assert (directory / "a").read_bytes() == b"x"
    assert not (directory / "b").exists()


@pytest.mark.parametrize(
    "name",
    [b"caf\xe9 \xff.txt", "\u00e9".encode() * 127, b"L" * 255, b"with space and\nnewline"],
    ids=["latin-1", "254 bytes utf-8", "255 bytes", "newline"],
)
def test_rename_noreplace_keeps_names_as_bytes(
    rename_kind: str, root: tuple[Path, int], name: bytes
) -> None:
    directory, fd = root
    with open(os.fsencode(directory) + b"/" + name, "wb") as fh:
        fh.write(b"x")
    os.mkdir(os.fsencode(directory) + b"/sub")

    with parent_of(fd, b"sub/" + name) as (dst_fd, dst_name):
        rename_noreplace(fd, name, dst_fd, dst_name)

    assert os.listdir(os.fsencode(directory) + b"/sub") == [name]


def test_parent_of_refuses_a_symlinked_parent(
    lookup: str, root: tuple[Path, int], tmp_path: Path
) -> None:
    directory, fd = root
    outside = tmp_path / "outside"
    (outside / "deeper").mkdir(parents=True)
    (directory / "inside").mkdir()
    (directory / "inside" / "link").symlink_to(outside)
    (directory / "top-link").symlink_to(outside)
    before = snapshot(outside)

    for rel in (b"top-link/x", b"inside/link/x", b"inside/link/deeper/x", b"top-link/new/x"):
        with pytest.raises(UnsafePath), parent_of(fd, rel, create=True):
            pass

    assert snapshot(outside) == before


def test_parent_of_refuses_a_file_as_a_parent(lookup: str, root: tuple[Path, int]) -> None:
    directory, fd = root
    write(directory / "file", b"x")

    with pytest.raises(UnsafePath), parent_of(fd, b"file/x", create=True):
        pass


@pytest.mark.parametrize(
    "rel",
    [
        *(b"../x", b"a/../../x", b"a/..", b"..", b".", b"a/./x", b"/etc/passwd", b"a//x", b"a/"),
        *(b"", b"a/x\0/../../y", b"a\0/x"),
    ],
)
def test_parent_of_refuses_a_path_that_is_not_clean(
    lookup: str, root: tuple[Path, int], rel: bytes
) -> None:
    directory, fd = root
    (directory / "a").mkdir()
    before = snapshot(directory.parent)

    with pytest.raises(UnsafePath), parent_of(fd, rel, create=True):
        pass

    assert snapshot(directory.parent) == before


def test_parent_of_creates_missing_folders_after_announcing_each(
    lookup: str,
    root: tuple[Path, int],
) -> None:
    directory, fd = root
    (directory / "a").mkdir()
    announced: list[tuple[bytes, bool]] = []

    def before_mkdir(rel_dir: bytes) -> None:
        announced.append((rel_dir, (directory / os.fsdecode(rel_dir)).exists()))

    with parent_of(fd, b"a/b/c/name", create=True, before_mkdir=before_mkdir) as (dir_fd, name):
        assert name == b"name"
        assert os.fstat(dir_fd).st_ino == os.lstat(directory / "a" / "b" / "c").st_ino

    expected_announced = [(b"a/b", False), (b"a/b/c", False)]
    assert announced == expected_announced
    assert (directory / "a" / "b" / "c").is_dir()


def test_parent_of_without_create_makes_nothing(lookup: str, root: tuple[Path, int]) -> None:
    directory, fd = root

    with pytest.raises(FileNotFoundError), parent_of(fd, b"a/b/name"):
        pass

    assert list(directory.iterdir()) == []


def test_parent_of_leaves_no_descriptor_open(lookup: str, root: tuple[Path, int]) -> None:
    directory, fd = root
    (directory / "a" / "b").mkdir(parents=True)
    (directory / "link").symlink_to(directory / "a")
    open_before = len(os.listdir("/proc/self/fd"))

    for _ in range(50):
        with parent_of(fd, b"a/b/x"):
            pass
        with pytest.raises(UnsafePath), parent_of(fd, b"link/b/x"):
            pass

    assert len(os.listdir("/proc/self/fd")) == open_before


@pytest.mark.parametrize(
    ("change", "expected_match"),
    [
        ("nothing", True),
        ("content, same size, new mtime", False),
        ("size", False),
        ("mtime", False),
        ("another inode, same size and mtime", False),
        ("a symlink now", False),
    ],
)
def test_identity_matches_only_the_file_the_scan_saw(
    tmp_path: Path, change: str, expected_match: bool
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    os.utime(path, ns=(10**18, 10**18))
    identity = Identity.of(os.lstat(path))
    if change == "content, same size, new mtime":
        path.write_bytes(b"54321")
    elif change == "size":
        path.write_bytes(b"123456")
        os.utime(path, ns=(10**18, 10**18))
    elif change == "mtime":
        os.utime(path, ns=(10**18, 10**18 + 1))
    elif change == "another inode, same size and mtime":
        (tmp_path / "g").write_bytes(b"12345")
        os.utime(tmp_path / "g", ns=(10**18, 10**18))
        os.replace(tmp_path / "g", path)
    elif change == "a symlink now":
        path.unlink()
        path.symlink_to(tmp_path / "elsewhere")

    assert identity.matches(os.lstat(path)) is expected_match


def test_identity_of_a_copy_matches_without_the_inode(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"same")
    (tmp_path / "b").write_bytes(b"same")
    for name in ("a", "b"):
        os.utime(tmp_path / name, ns=(5, 5))
    identity = Identity.of(os.lstat(tmp_path / "a"))

    assert not identity.matches(os.lstat(tmp_path / "b"))
    assert identity.matches(os.lstat(tmp_path / "b"), same_inode=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another owner takes root")
def test_copy_beside_gives_the_copy_its_owner(root: tuple[Path, int]) -> None:
    # A move to another filesystem is such a copy: run as root, it made every file root's.
    path, fd = root
    (path / "src").write_bytes(b"data")
    copy_beside(fd, b"src", fd, b"copy", 0o104750, 1, 2, owner=(65534, 65533))
    st = os.lstat(path / "copy")
    assert (st.st_uid, st.st_gid, st.st_mode) == (65534, 65533, 0o104750)  # setuid kept


def test_copy_beside_never_replaces_and_keeps_mode_and_times(root: tuple[Path, int]) -> None:
    directory, fd = root
    write(directory / "src", b"payload" * 1000)
    write(directory / "taken", b"theirs")

    with pytest.raises(FileExistsError):
        copy_beside(fd, b"src", fd, b"taken", 0o100640, 1, 2)
    digest = copy_beside(fd, b"src", fd, b"copy", 0o100640, 10**9, 2 * 10**9)

    st = os.lstat(directory / "copy")
    assert (directory / "taken").read_bytes() == b"theirs"
    assert (directory / "copy").read_bytes() == b"payload" * 1000
    assert digest == fsops.digest_at(fd, b"src")
    assert (st.st_mode & 0o7777, st.st_mtime_ns, st.st_atime_ns) == (0o640, 2 * 10**9, 10**9)
    assert st.st_ino != os.lstat(directory / "src").st_ino
