"""Apply racing other writers: a conflict is never an overwrite, a symlink is never followed.

Each race comes twice: made deterministic by acting after the plan and before the apply, then
with a thread acting while the apply runs. That thread first acts while the apply is held in
the check-then-act window of a naive tool (the destination found free, the file not moved
yet), so the race happens on every run and the test asserts that it did.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storage.operations import PlanOptions
from tests.apply_helpers import Operation, contents, differences
from tests.trees import snapshot

STAMP = 1_555_083_000 * 10**9
FILES = 120
DEADLINE = 60.0  # for a thread to reach its point of the race (two loaded cores)


def inbox(base: Path, files: int = FILES) -> tuple[Operation, Path]:
    """`files` files with distinct contents in root/inbox (documents and images), planned to
    Documents/ and Images/; and beside the root an outside folder holding decoys: files with
    the same names, contents and mtimes."""
    op = Operation(base, PlanOptions(mode="category"))
    outside = base / "outside"
    for folder in (op.root / "inbox", outside):
        folder.mkdir(parents=True)
        for i in range(files):
            path = folder / (f"doc {i}.txt" if i % 3 else f"IMG_{i:04d}.jpg")
            path.write_bytes(b"\xff\xd8\xff\xe0 " * (i % 3 == 0) + f"file {i}".encode())
            os.utime(path, ns=(STAMP + i, STAMP + i))
    op.plan()
    return op, outside


def moves(op: Operation) -> list[dict[str, Any]]:
    return [row for row in op.rows().values() if row["action"] == "move"]


def test_destinations_taken_after_planning_are_conflicts(tmp_path: Path) -> None:
    op, _ = inbox(tmp_path)
    before = snapshot(op.root)
    rows = moves(op)
    taken = {row["dst"]: f"their file {i}".encode() for i, row in enumerate(rows[::3])}
    for dst, content in taken.items():
        path = op.root / os.fsdecode(dst)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    counts = op.apply()

    assert counts == Counter(done=len(rows) - len(taken), conflicts=len(taken))
    for row in rows:
        src, dst = op.root / os.fsdecode(row["src"]), op.root / os.fsdecode(row["dst"])
        if row["dst"] in taken:
            assert dst.read_bytes() == taken[row["dst"]]
            assert src.read_bytes() == (op.root.parent / "outside" / src.name).read_bytes()
        else:
            assert not src.exists()
    theirs_digests = Counter(hashlib.sha256(content).hexdigest() for content in taken.values())
    assert contents(snapshot(op.root)) == contents(before) + theirs_digests

    op.rollback()

    after = snapshot(op.root)
    assert differences(before, {p: e for p, e in after.items() if p not in taken}) == [
        "b'Documents': directory added",
        "b'Images': directory added",
    ]
    for dst, content in taken.items():
        assert (op.root / os.fsdecode(dst)).read_bytes() == content


class HeldInTheWindow:
    """Holds the apply once in the window a check-then-act tool leaves open: after the plan
    found `target` free and right before the apply moves a file there (its rename into the
    folder it holds open), until the racing thread has acted and calls `go()`.

    It wraps the apply's rename (tasks.apply.local.rename_noreplace); `reached` is set only if
    the apply got there, so a test that asserts it knows its race happened."""

    def __init__(self, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from tasks.apply import local

        self.target = target
        self.reached = threading.Event()
        self.moved_before: int | None = None  # files the apply had moved when it got there
        self._go = threading.Event()
        self._apply_thread = threading.get_ident()  # the apply runs in the test's own thread
        real = local.rename_noreplace

        def held(src_fd: int, src_name: bytes, dst_fd: int, name: bytes) -> None:
            if self._is_the_move(name, dst_fd):
                self.reached.set()
                assert self._go.wait(DEADLINE), "the racing thread never let the apply go"
            real(src_fd, src_name, dst_fd, name)

        monkeypatch.setattr(local, "rename_noreplace", held)

    def _is_the_move(self, name: bytes, dir_fd: int) -> bool:
        if self.reached.is_set() or threading.get_ident() != self._apply_thread:
            return False
        if os.fsencode(name) != os.fsencode(self.target.name):
            return False
        folder, held = os.stat(self.target.parent), os.fstat(dir_fd)
        return (folder.st_dev, folder.st_ino) == (held.st_dev, held.st_ino)

    def wait(self) -> bool:
        return self.reached.wait(DEADLINE)

    def go(self) -> None:
        self._go.set()


def apply_racing(op: Operation, window: HeldInTheWindow, racer: Callable[[], None]) -> Counter[str]:
    """The apply's counts, with `racer` running in a thread meanwhile; the apply is let go
    however the racer ends."""
    thread = threading.Thread(target=racer)
    thread.start()
    try:
        return op.apply()
    finally:
        window.go()
        thread.join()


def claim(target: Path) -> bytes | None:
    """Create `target` as another program would, never replacing it: its content, or None
    if the name was taken."""
    target.parent.mkdir(parents=True, exist_ok=True)
    content = f"theirs: {target.name}".encode()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    os.write(fd, content)
    os.close(fd)
    return content


def test_a_concurrent_writer_causes_conflicts_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, _ = inbox(tmp_path)
    before = snapshot(op.root)
    rows = moves(op)
    targets = [op.root / os.fsdecode(row["dst"]) for row in rows]
    window = HeldInTheWindow(targets[len(targets) // 2], monkeypatch)
    created: dict[Path, bytes] = {}

    def writer() -> None:
        """Claims the destination the apply has just found free, then lets it go on and
        claims every destination still free, in the order the apply reaches them: it races
        the apply at its front."""
        if not window.wait():
            return
        window.moved_before = sum(target.exists() for target in targets)
        for target in [window.target, *targets]:
            content = claim(target)
            if content is not None:
                created[target] = content
            window.go()  # after the first claim: the one in the window

    counts = apply_racing(op, window, writer)

    assert window.reached.is_set(), "the apply never checked the destination it was held at"
    assert window.target in created  # claimed between the apply's check and its move
    assert window.moved_before  # the apply was under way: it had moved files already
    assert counts == Counter(done=len(rows) - len(created), conflicts=len(created))
    for target, content in created.items():
        assert target.read_bytes() == content  # theirs, never replaced
    for row, target in zip(rows, targets, strict=True):
        src = op.root / os.fsdecode(row["src"])
        original = before[row["src"]].digest
        if target in created:
            assert snapshot_digest(src) == original, f"{row['src']!r} left its place"
        else:
            assert snapshot_digest(target) == original
            assert not src.exists()


def snapshot_digest(path: Path) -> str | None:
    entry = snapshot(path.parent).get(os.fsencode(path.name))
    return None if entry is None else entry.digest


@pytest.mark.parametrize(
    ("side", "expected_unsafe"),
    [("source", FILES), ("destination", FILES - FILES // 3)],
)
def test_a_folder_swapped_for_a_symlink_after_planning_is_unsafe(
    tmp_path: Path, side: str, expected_unsafe: int
) -> None:
    op, outside = inbox(tmp_path)
    outside_before = snapshot(outside)
    if side == "source":
        os.rename(op.root / "inbox", op.root / "inbox-real")
        (op.root / "inbox").symlink_to(outside)
    else:
        (op.root / "Documents").symlink_to(outside)
    inside_before = snapshot(op.root)

    counts = op.apply()

    assert counts == Counter(unsafe=expected_unsafe, done=FILES - expected_unsafe)
    assert snapshot(outside) == outside_before
    if side == "source":
        assert snapshot(op.root) == inside_before  # nothing could move at all
    op.rollback()
    assert snapshot(outside) == outside_before


def test_folders_swapped_for_symlinks_during_apply_change_nothing_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op, outside = inbox(tmp_path, files=300)
    away = tmp_path / "away"
    away.mkdir()
    outside_before, away_before = snapshot(outside), snapshot(away)
    before = contents(snapshot(op.root))
    targets = [op.root / os.fsdecode(row["dst"]) for row in moves(op)]
    documents = [t for t in targets if t.parent.name == "Documents"]
    window = HeldInTheWindow(documents[len(documents) // 2], monkeypatch)
    swapped: list[str] = []

    def swap() -> None:
        """While the apply holds its source folder (inbox) and its destination (Documents)
        open, move both aside within the root and put symlinks leading out of it in their
        place: a tool that acts by path would now read the decoys and write outside."""
        if not window.wait():
            return
        window.moved_before = sum(target.exists() for target in targets)
        for name, target in (("Documents", away), ("inbox", outside)):
            os.rename(op.root / name, op.root / f"{name}-moved")
            (op.root / name).symlink_to(target)
            swapped.append(name)
        window.go()

    counts = apply_racing(op, window, swap)

    assert swapped == ["Documents", "inbox"], "the folders were not swapped in the window"
    assert window.moved_before  # the apply was under way
    # The held move goes through the folders it holds open, both still in the root; every
    # later one meets a symlink where a folder was ("changed" would mean a decoy was read).
    assert counts == Counter(done=window.moved_before + 1, unsafe=300 - window.moved_before - 1)
    assert (op.root / "Documents-moved" / window.target.name).is_file()
    assert snapshot(outside) == outside_before
    assert snapshot(away) == away_before
    assert contents(snapshot(op.root)) == before

    op.rollback()

    assert snapshot(outside) == outside_before
    assert snapshot(away) == away_before
    assert contents(snapshot(op.root)) == before
