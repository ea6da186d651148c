"""The `root` fixture's helpers behave the same on both backends, so a contract test that
uses them tests the stage, not the helper."""

from __future__ import annotations

import pytest

from tests.roots import TreeRoot


def test_a_root_starts_empty(root: TreeRoot) -> None:
    assert root.files() == []
    assert root.snapshot() == {}


def test_written_files_are_read_listed_and_statted_by_relative_path(root: TreeRoot) -> None:
    root.write("a.txt", b"alpha")
    root.write(b"deep/er/b.bin", b"\x00" * 3)

    assert root.files() == [b"a.txt", b"deep/er/b.bin"]
    assert root.read(b"a.txt") == b"alpha"
    assert root.exists("deep/er/b.bin")
    assert not root.exists("deep")  # a folder is no file
    assert root.stat("deep/er/b.bin").size == 3
    assert root.stat("a.txt").mtime_ns > 0
    assert root.snapshot() == {b"a.txt": b"alpha", b"deep/er/b.bin": b"\x00\x00\x00"}


def test_write_never_overwrites_and_remove_removes(root: TreeRoot) -> None:
    root.write("a.txt", b"first")
    with pytest.raises(FileExistsError):
        root.write("a.txt", b"second")
    assert root.read("a.txt") == b"first"
    root.remove("a.txt")
    assert root.files() == []


def test_the_url_names_the_backend(root: TreeRoot) -> None:
    assert root.url.startswith("s3://") == root.is_object
