"""tasks.apply.batch_dirs: a batch keeps one descriptor per folder, but looks every path up
again, so a folder swapped for a symlink in the middle of a batch is refused all the same."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.apply import batch_dirs, fsops
from tasks.apply.batch_dirs import BatchDirs
from tasks.apply.fsops import UnsafePath, open_root
from tests.trees import snapshot


@pytest.fixture(params=["openat2", "walk"])
def dirs(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[BatchDirs]:
    if request.param == "walk":
        monkeypatch.setattr(fsops, "_openat2", None)
    elif fsops._openat2 is None:
        pytest.skip("no openat2 here")
    (tmp_path / "root" / "in").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    with open_root(os.fsencode(tmp_path / "root")) as root_fd:
        batch = BatchDirs(root_fd)
        try:
            yield batch
        finally:
            batch.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_folder_swapped_for_a_symlink_within_a_batch_is_refused(
    dirs: BatchDirs, tmp_path: Path
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in" / "a.txt").write_bytes(b"a")
    (outside / "b.txt").write_bytes(b"theirs")
    fd, _ = dirs.parent(b"in/a.txt")
    assert dirs.parent(b"in/b.txt") == (fd, b"b.txt")  # the batch's descriptor of in/, reused
    (root / "in").rename(outside / "in")  # the kept descriptor now points outside the root
    (root / "in").symlink_to(outside)
    before = snapshot(outside)

    with pytest.raises(UnsafePath):
        dirs.parent(b"in/b.txt")

    assert snapshot(outside) == before


def test_a_folder_replaced_by_another_is_a_folder_of_its_own(
    dirs: BatchDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both are fsynced: the renames in the first one are as much the batch's as the second's."""
    root = tmp_path / "root"
    first, _ = dirs.parent(b"in/a.txt")
    (root / "in").rename(root / "old")
    (root / "in").mkdir()
    second, _ = dirs.parent(b"in/a.txt")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: synced.append(os.fstat(fd).st_ino) or real_fsync(fd)
    )

    dirs.sync()

    expected_synced = {os.lstat(root / "old").st_ino, os.lstat(root / "in").st_ino}
    assert first != second
    assert set(synced) == expected_synced


def test_one_descriptor_per_folder_and_none_after_the_sync(dirs: BatchDirs, tmp_path: Path) -> None:
    root = tmp_path / "root"
    for i in range(20):
        (root / "in" / str(i % 4)).mkdir(exist_ok=True)
    before = open_fds()

    for i in range(200):
        dirs.parent(b"in/%d/file-%d" % (i % 4, i))
        dirs.parent(b"top-level-%d" % i)  # the root's own folder, one descriptor too
        dirs.parent(b"in/new/file", create=True)

    # in/0..3, the root, in/new; and the /proc link of each but the root (the root's path is
    # the root descriptor's own: not re-verified)
    assert open_fds() == before + 6 + 5
    dirs.sync()
    assert open_fds() == before


def test_a_batch_is_full_at_its_limit_of_descriptors(
    dirs: BatchDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_dirs, "LIMIT", 3)
    for i in range(3):
        (tmp_path / "root" / "in" / str(i)).mkdir()
        assert not dirs.full
        dirs.parent(b"in/%d/x" % i)

    assert dirs.full


def counting_lookups(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    looked_up: list[bytes] = []
    real = batch_dirs.open_parent

    def open_parent(root_fd: int, folder: bytes, *args: Any) -> int:
        looked_up.append(folder)
        return real(root_fd, folder, *args)

    monkeypatch.setattr(batch_dirs, "open_parent", open_parent)
    return looked_up


def test_a_kept_folder_still_where_it_was_is_not_looked_up_again(
    dirs: BatchDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "root" / "in" / "sub").mkdir()
    looked_up = counting_lookups(monkeypatch)

    found = {dirs.parent(b"in/sub/%d" % i) for i in range(50)}

    assert {fd for fd, _ in found} == {dirs.parent(b"in/sub/x")[0]}
    assert looked_up == [b"in/sub"]  # its chain re-verified for the 49 others


def test_a_folder_above_swapped_for_a_symlink_is_refused_and_a_moved_one_looked_up(
    dirs: BatchDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in" / "sub").mkdir()
    (root / "in" / "sub" / "a.txt").write_bytes(b"a")
    kept, _ = dirs.parent(b"in/sub/a.txt")
    (root / "in").rename(outside / "in")  # the kept in/sub is outside the root now
    (root / "in").symlink_to(outside / "in")

    with pytest.raises(UnsafePath):
        dirs.parent(b"in/sub/a.txt")

    (root / "in").unlink()
    (root / "in").mkdir()
    (root / "in" / "sub").mkdir()  # another folder by the same name
    fd, name = dirs.parent(b"in/sub/a.txt")
    assert (fd, name) != (kept, b"a.txt")
    assert os.fstat(fd).st_ino == (root / "in" / "sub").stat().st_ino
    (outside / "in").rename(root / "in" / "back")  # the first one, elsewhere in the root
    assert dirs.parent(b"in/back/sub/a.txt")[0] == kept  # found by the lookup, one descriptor


@pytest.mark.parametrize("rel", [b"/in/a", b"in//a", b"in/./a", b"in/../a", b"in/", b"in/a\0"])
def test_a_path_that_is_not_clean_is_refused_in_a_kept_folder_too(
    dirs: BatchDirs, rel: bytes
) -> None:
    dirs.parent(b"in/a")
    dirs.parent(b"a")

    with pytest.raises(UnsafePath):
        dirs.parent(rel)


def test_without_proc_every_item_is_looked_up_and_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_dirs, "_open_proc_fds", lambda: None)
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    looked_up = counting_lookups(monkeypatch)
    with open_root(os.fsencode(root)) as root_fd:
        dirs = BatchDirs(root_fd)
        try:
            first = {dirs.parent(b"in/%d" % i)[0] for i in range(3)}
            (root / "in").rename(outside / "in")
            (root / "in").symlink_to(outside)
            with pytest.raises(UnsafePath):
                dirs.parent(b"in/3")
        finally:
            dirs.close()

    assert len(first) == 1
    assert looked_up == [b"in"] * 4
