"""What a power cut could leave: the order of journal writes, renames and fsyncs.

A SIGKILL keeps the page cache, so the crash tests (test_crash.py) cannot tell a durable line
from a written one. Here every journal write, fsync and rename of an apply and a rollback is
recorded, and replayed against what a power cut at any point would keep, the journal up to
its last fsync and the renames whose folders were fsynced:
* an item's intent is durable before its rename (rule 2);
* a `done` line becomes durable only once the folders of its rename are fsynced, so the
  journal never says done for a move that a power cut could undo;
both across batches (LocalSession.batch made small) and with folders made in the middle of a
batch, whose announcement syncs the journal there.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from storage.operations import PlanOptions
from tasks.apply import local
from tests.apply_helpers import Operation, differences
from tests.trees import snapshot

STAMP = 1_555_083_000 * 10**9
FILES = {
    "inbox/a.txt": b"alpha",
    "inbox/b.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 bravo",  # Images/: a folder made mid-batch
    "inbox/c.txt": b"charlie",
    "inbox/d.pdf": b"%PDF-1.4 delta",
    "inbox/sub/e.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 echo",
    "f.txt": b"foxtrot",
}


def identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


@dataclass
class Rename:
    names: tuple[bytes, bytes]
    unsynced: set[tuple[int, int]]  # its folders not fsynced since


@dataclass
class PowerCut:
    """Replays the calls as they happen; fails at the first one a power cut could betray."""

    written: bytes = b""
    durable: bytes = b""
    renames: list[Rename] = field(default_factory=list)

    def lines(self, data: bytes) -> list[dict[str, Any]]:
        return [json.loads(line) for line in data.split(b"\n") if line]

    def write(self, data: bytes) -> None:
        self.written += data

    def fsync(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            for rename in self.renames:
                rename.unsynced.discard(identity(fd))
            return
        newly = self.lines(self.written[len(self.durable) :])
        self.durable = self.written
        intents = {e["seq"]: e for e in self.lines(self.durable) if e["phase"] == "intent"}
        for entry in newly:
            if entry["phase"] == "done" and entry["seq"] in intents:
                intent = intents[entry["seq"]]
                names = tuple(os.fsencode(intent[k]).rsplit(b"/", 1)[-1] for k in ("src", "dst"))
                (rename,) = [r for r in self.renames if r.names == names][-1:]
                assert rename.unsynced == set(), f"durable before its folders: {entry}"

    def rename(self, src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
        announced = {
            tuple(os.fsencode(e[k]).rsplit(b"/", 1)[-1] for k in ("src", "dst"))
            for e in self.lines(self.durable)
            if e["phase"] == "intent"
        }
        assert (src, dst) in announced, f"renamed before its intent was durable: {src!r}"
        self.renames.append(Rename((src, dst), {identity(src_fd), identity(dst_fd)}))


@pytest.fixture
def power_cut(monkeypatch: pytest.MonkeyPatch) -> PowerCut:
    cut = PowerCut()
    real_write, real_fsync, real_rename = os.write, os.fsync, local.rename_noreplace

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
            cut.write(bytes(data))
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        real_fsync(fd)
        cut.fsync(fd)

    def rename(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
        cut.rename(src_fd, src, dst_fd, dst)
        real_rename(src_fd, src, dst_fd, dst)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(local, "rename_noreplace", rename)
    return cut


@pytest.mark.parametrize("batch", [2, 4096], ids=["batches of 2", "one batch"])
def test_a_power_cut_never_leaves_the_journal_ahead_of_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int, power_cut: PowerCut
) -> None:
    op = Operation(tmp_path, PlanOptions(mode="category"))
    for i, (rel, content) in enumerate(FILES.items()):
        path = op.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(STAMP + i, STAMP + i))
    before = snapshot(op.root)
    op.plan()
    monkeypatch.setattr(local.LocalSession, "batch", batch)

    applied = op.apply()
    power_cut.renames.clear()
    undone = op.rollback()

    assert applied == undone == Counter(done=len(FILES))
    assert differences(before, snapshot(op.root)) == []
    assert len(power_cut.renames) == len(FILES)  # the rollback's, checked as the apply's were
