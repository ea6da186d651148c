"""Moves across devices onto a small, real filesystem (issue 12 point 11): free space is
checked before a copy starts, a copy that fails for any reason (the disk full after all, an
I/O error, an interrupt) leaves no partial file, and neither apply nor rollback leaves a
temporary name behind or calls itself complete while one remains.

The root is on the ordinary disk and its `Documents/` folder, where the plan puts every file,
is a 2 MiB tmpfs mounted for the test (this needs root; it is unmounted by the fixture).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.journal import read_journal
from storage.operations import PlanOptions
from tasks.apply import local
from tasks.apply.fsops import temp_name
from tests.apply_helpers import TEMP_PREFIX, Operation, differences, temp_names
from tests.trees import snapshot

MIB = 1024 * 1024
FILE = 400 * 1024  # five fit on the 2 MiB tmpfs, the sixth does not
FILES = 6
STAMP = 1_555_083_000 * 10**9


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Operation]:
    """An operation whose six 400 KiB documents all go onto a 2 MiB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    op = Operation(tmp_path, PlanOptions(mode="category"))
    for i in range(FILES):
        path = op.root / "inbox" / f"report {i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([65 + i]) * FILE)
        os.utime(path, ns=(STAMP + i, STAMP + i))
    mount = op.root / "Documents"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount], check=True)
    try:
        assert os.stat(mount).st_dev != os.stat(op.root / "inbox").st_dev
        yield op
    finally:
        subprocess.run(["umount", "-l", mount], check=True)


def free_bytes(path: Path) -> int:
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize


def apply_reasons(op: Operation) -> list[str]:
    return [
        str(e["reason"])
        for journal in op.journals()
        for e in read_journal(journal)
        if e["phase"] in ("failed", "skipped")
    ]


def leftovers(op: Operation) -> list[bytes]:
    return temp_names(snapshot(op.root))


def test_a_copy_that_cannot_fit_is_refused_before_it_starts(small_disk: Operation) -> None:
    op = small_disk
    op.plan()

    counts = op.apply()

    assert counts == Counter(done=FILES - 1, errors=1)
    (reason,) = apply_reasons(op)
    assert reason.startswith("no space on the destination: ")
    assert free_bytes(op.root / "Documents") < FILE  # the disk really is too full for it
    (stayed,) = os.listdir(op.root / "inbox")
    assert (op.root / "inbox" / stayed).stat().st_size == FILE
    assert leftovers(op) == []


def test_a_disk_that_fills_during_the_copy_leaves_no_partial_copy(
    small_disk: Operation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room was there when checked and gone by the write (another writer took it): the
    real ENOSPC from the tmpfs, and the partial copy removed."""
    op = small_disk
    op.plan()
    monkeypatch.setattr(local, "check_room", lambda dir_fd, size: None, raising=False)

    counts = op.apply()

    assert counts == Counter(done=FILES - 1, errors=1)
    assert apply_reasons(op) == [os.strerror(errno.ENOSPC)]  # the disk did fill up
    assert leftovers(op) == []
    assert free_bytes(op.root / "Documents") >= 2 * MIB - (FILES - 1) * FILE - 64 * 1024


@pytest.mark.parametrize("failure", ["EIO", "interrupt"])
def test_a_copy_cut_short_leaves_no_partial_copy(
    small_disk: Operation, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    op = small_disk
    before = snapshot(op.root)
    op.plan()
    real_write = os.write
    written: list[int] = []

    def half_then_fail(fd: int, data: bytes | memoryview) -> int:
        if b"/.fileorg-copy-" not in os.readlink(f"/proc/self/fd/{fd}").encode():
            return real_write(fd, data)
        real_write(fd, data[: FILE // 2])
        written.append(os.fstat(fd).st_size)
        if failure == "EIO":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", half_then_fail)
    if failure == "EIO":
        assert op.apply() == Counter(errors=FILES)
    else:
        with pytest.raises(KeyboardInterrupt):
            op.apply()
    assert written and written[0] == FILE // 2  # a partial copy did exist
    assert leftovers(op) == []
    assert differences(before, snapshot(op.root)) == []

    monkeypatch.setattr(os, "write", real_write)
    if failure == "interrupt":  # the same command again finishes the work
        assert op.apply() == Counter(done=FILES - 1, errors=1)
        assert leftovers(op) == []


def test_rollback_removes_partial_copies_and_is_not_complete_while_one_stays(
    small_disk: Operation,
) -> None:
    """Debris as an older fileorg left it after a full disk: a partial copy beside the
    destination of the move that failed. Rollback removes it while its source is intact, and
    calls itself incomplete when one cannot be removed (its source is gone)."""
    op = small_disk
    before = snapshot(op.root)
    op.plan()
    op.apply()
    intents = [e for j in op.journals() for e in read_journal(j) if e["phase"] == "intent"]
    failed = {e["seq"] for j in op.journals() for e in read_journal(j) if e["phase"] == "failed"}
    (intent,) = [e for e in intents if e["seq"] in failed]
    debris = op.root / "Documents" / os.fsdecode(temp_name(intent["seq"], "copy"))
    debris.write_bytes(b"x" * 1000)

    counts = op.rollback()

    assert counts == Counter(done=FILES - 1)
    assert leftovers(op) == []
    assert differences(before, snapshot(op.root)) == []

    debris.write_bytes(b"x" * 1000)
    os.unlink(op.root / os.fsdecode(intent["src"].encode("utf-8", "surrogateescape")))
    assert op.rollback()["debris"] == 1
    assert debris.exists()  # maybe the only copy of that file now: never removed blindly
    assert TEMP_PREFIX in debris.name.encode()
