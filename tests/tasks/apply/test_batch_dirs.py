"""tasks.apply.batch_dirs: a batch keeps one descriptor per folder, but looks every path up
again, so a folder swapped for a symlink in the middle of a batch is refused all the same."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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

    assert open_fds() == before + 6  # in/0..3, the root, in/new
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
