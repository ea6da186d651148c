"""The scan: an lstat walk that never follows symlinks, and its shards with their checkpoint."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from storage import manifests
from storage.errors import RootError
from storage.leave_alone import ScanRules
from storage.locations import DataStore
from storage.roots import check_root
from tasks.backends import backend_for
from tasks.scan.columns import display
from tasks.scan.local import BUDGET, batches
from tasks.scan.stage import scan_root

OP = "operations/5b0e1c9a-2f43-4c55-9d7e-0b7a3c1e4f10"


def make_tree(root: Path) -> None:
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello")
    (root / "b" / "deep" / "c.bin").write_bytes(b"x" * 1000)
    (root / "b" / "z.txt").write_bytes(b"")


Row = SimpleNamespace  # one scan row, its columns as attributes


def walk(
    root: bytes, rules: ScanRules = ScanRules(), processes: int = 1, budget: int = BUDGET
) -> list[Row]:
    """The walk's rows, in order."""
    return [Row(**r) for b in batches(root, rules, processes, budget) for r in b.to_pylist()]


def rel(entries: list[Row]) -> list[bytes]:
    return [e.path for e in entries]


def test_walk_lists_files_depth_first_in_name_order(tmp_path: Path) -> None:
    make_tree(tmp_path)

    entries = list(walk(bytes(tmp_path)))

    assert rel(entries) == [b"a.txt", b"b/z.txt", b"b/deep/c.bin"]
    assert list(walk(bytes(tmp_path))) == entries


def test_walk_records_what_lstat_says(tmp_path: Path) -> None:
    make_tree(tmp_path)
    os.link(tmp_path / "a.txt", tmp_path / "hard.txt")
    os.utime(tmp_path / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))

    by_path = {e.path: e for e in walk(bytes(tmp_path))}

    a = by_path[b"a.txt"]
    st = os.lstat(tmp_path / "a.txt")
    assert (a.kind, a.size, a.mtime_ns) == ("file", 5, 1_600_000_000_123_456_789)
    assert (a.dev, a.ino, a.nlink, a.mode) == (st.st_dev, st.st_ino, 2, st.st_mode)
    assert (by_path[b"hard.txt"].dev, by_path[b"hard.txt"].ino) == (a.dev, a.ino)
    assert a.error is None and a.link_target is None


def test_symlinks_are_recorded_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not ours")
    (root / "real" / "f.txt").write_bytes(b"f")
    (root / "to_outside").symlink_to(outside, target_is_directory=True)
    (root / "to_real").symlink_to("real", target_is_directory=True)
    (root / "to_file.txt").symlink_to("real/f.txt")
    (root / "dangling").symlink_to("nowhere")
    (root / "loop").symlink_to("loop")

    by_path = {e.path: e for e in walk(bytes(root))}

    expected_paths = [
        b"dangling",
        b"loop",
        b"real/f.txt",
        b"to_file.txt",
        b"to_outside",
        b"to_real",
    ]
    assert sorted(by_path) == expected_paths
    expected_targets = {
        b"dangling": b"nowhere",
        b"loop": b"loop",
        b"to_file.txt": b"real/f.txt",
        b"to_outside": bytes(outside),
        b"to_real": b"real",
    }
    for path, target in expected_targets.items():
        assert by_path[path].kind == "symlink"
        assert by_path[path].link_target == target
        assert stat.S_ISLNK(by_path[path].mode)


def test_special_files_are_other(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")

    (entry,) = walk(bytes(tmp_path))

    assert (entry.path, entry.kind) == (b"pipe", "other")


def test_names_that_are_not_utf8_survive(tmp_path: Path) -> None:
    root = bytes(tmp_path)
    os.mkdir(root + b"/d\xe9j\xe0")
    for name in (b"\xff\xfe.bin", b"d\xe9j\xe0/caf\xe9.txt", "日本.txt".encode()):
        with open(root + b"/" + name, "wb") as fh:
            fh.write(b"x")

    paths = rel(list(walk(root)))

    assert paths == ["日本.txt".encode(), b"\xff\xfe.bin", b"d\xe9j\xe0/caf\xe9.txt"]
    assert display(b"caf\xe9") == "caf\\xe9"


@pytest.fixture
def scandir_refusing(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[bytes]]:
    """os.scandir raising PermissionError for the paths put in the set (we run as root,
    where chmod 000 does not stop a read)."""
    refused: set[bytes] = set()
    real = os.scandir

    def fake(path: Any = ".") -> Any:
        if os.fsencode(path) in refused:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", fake)
    yield refused


def test_an_unreadable_directory_is_one_error_entry(
    tmp_path: Path, scandir_refusing: set[bytes]
) -> None:
    make_tree(tmp_path)
    (tmp_path / "b" / "locked").mkdir()
    (tmp_path / "b" / "locked" / "hidden.txt").write_bytes(b"h")
    scandir_refusing.add(bytes(tmp_path / "b" / "locked"))

    entries = list(walk(bytes(tmp_path)))

    assert rel(entries) == [b"a.txt", b"b/z.txt", b"b/deep/c.bin", b"b/locked"]
    assert (entries[-1].kind, entries[-1].error) == ("error", "Permission denied")


def test_an_unreadable_root_is_fatal(tmp_path: Path, scandir_refusing: set[bytes]) -> None:
    scandir_refusing.add(bytes(tmp_path))

    with pytest.raises(PermissionError):
        list(walk(bytes(tmp_path)))


def test_a_directory_removed_during_the_walk_is_one_error_entry(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "later.txt").write_bytes(b"l")
    entries = (Row(**r) for b in batches(bytes(tmp_path), budget=1) for r in b.to_pylist())
    first = next(entries)  # the root is listed: b/ and c/ are queued

    for directory in ("b/deep", "b", "c"):
        for child in (tmp_path / directory).iterdir():
            if child.is_file():
                child.unlink()
        (tmp_path / directory).rmdir()
    rest = list(entries)

    assert first.path == b"a.txt"
    assert [(e.path, e.kind, e.error) for e in rest] == [
        (b"b", "error", "No such file or directory"),
        (b"c", "error", "No such file or directory"),
    ]


def test_a_file_removed_between_listing_and_lstat_is_one_error_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path)
    real = os.scandir

    class ListThenRemove:
        """Lists the root like os.scandir, then removes a.txt before it is lstat'ed."""

        def __init__(self, path: bytes) -> None:
            self.it = real(path)
            self.path = path

        def __enter__(self) -> Iterator[os.DirEntry[bytes]]:
            entries = list(self.it)
            if self.path == bytes(tmp_path):
                os.unlink(tmp_path / "a.txt")
            return iter(entries)

        def __exit__(self, *exc: object) -> None:
            self.it.close()

    monkeypatch.setattr(os, "scandir", ListThenRemove)

    entries = list(walk(bytes(tmp_path)))

    assert (entries[0].path, entries[0].kind) == (b"a.txt", "error")
    assert rel(entries[1:]) == [b"b/z.txt", b"b/deep/c.bin"]


def test_sealed_directories_are_not_entered_but_listed(tmp_path: Path) -> None:
    make_tree(tmp_path)
    (tmp_path / "data" / "operations").mkdir(parents=True)
    (tmp_path / "data" / "operations" / "x.parquet").write_bytes(b"p")
    rules = ScanRules(sealed=((bytes(tmp_path / "data"), "fileorg data folder"),))

    entries = list(walk(bytes(tmp_path), rules))

    assert rel(entries) == [b"a.txt", b"data", b"b/z.txt", b"b/deep/c.bin"]
    data = entries[1]
    assert (data.kind, data.left_alone, data.rule) == ("dir", "data-folder", "fileorg data folder")


def test_a_root_given_with_a_trailing_slash_gives_the_same_paths(tmp_path: Path) -> None:
    make_tree(tmp_path)

    assert rel(list(walk(bytes(tmp_path) + b"/"))) == rel(list(walk(bytes(tmp_path))))


# --- check_root -----------------------------------------------------------------------------


def test_check_root_returns_the_canonical_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")

    assert check_root(str(tmp_path / "link") + "/") == str(tmp_path / "real")


@pytest.mark.parametrize(
    ("make", "expected_message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "is not a directory"),
        (lambda p: p.symlink_to(p.parent / "nowhere"), "does not exist"),
    ],
)
def test_check_root_errors(tmp_path: Path, make: Any, expected_message: str) -> None:
    root = tmp_path / "root"
    make(root)

    with pytest.raises(RootError, match=expected_message):
        check_root(str(root))


def test_check_root_unreadable(tmp_path: Path, scandir_refusing: set[bytes]) -> None:
    scandir_refusing.add(bytes(tmp_path))

    with pytest.raises(RootError, match="cannot be read: Permission denied"):
        check_root(str(tmp_path))


# --- scan_root: what only a folder has (the rest: test_contract.py) ------------------------


def _op_dir(store: DataStore) -> str:
    return f"{store.base}/{OP}"


def test_scan_root_keeps_non_utf8_paths_and_errors(
    tmp_path: Path, store: DataStore, scandir_refusing: set[bytes]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "locked").mkdir()
    scandir_refusing.add(bytes(root / "locked"))
    with open(bytes(root) + b"/caf\xe9.txt", "wb") as fh:
        fh.write(b"abc")
    (root / "link").symlink_to("caf")

    info = scan_root(store, _op_dir(store), backend_for(str(root)), 100)

    (shard,) = manifests.shard_paths(store, _op_dir(store), "scan")
    rows = manifests.read_table(store, shard).to_pylist()
    expected = [
        (b"caf\xe9.txt", "caf\\xe9.txt", "file", 3, None),
        (b"link", "link", "symlink", 3, None),
        (b"locked", "locked", "error", 0, "Permission denied"),
    ]
    assert [(r["path"], r["path_text"], r["kind"], r["size"], r["error"]) for r in rows] == expected
    assert rows[1]["link_target"] == b"caf"
    assert (info["entries"], info["files"], info["errors"]) == (3, 1, 1)
