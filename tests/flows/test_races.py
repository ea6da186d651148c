"""Apply racing other writers: a conflict is never an overwrite, a symlink is never followed.

Each race comes twice: made deterministic by acting after the plan and before the apply (the
check-then-act window of a naive tool), then with a thread acting while the apply runs, whose
assertions hold whatever the interleaving.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from storage.operations import PlanOptions
from tests.apply_helpers import Operation, contents, differences
from tests.trees import snapshot

STAMP = 1_555_083_000 * 10**9
FILES = 120


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


def test_a_concurrent_writer_causes_conflicts_never_overwrites(tmp_path: Path) -> None:
    op, _ = inbox(tmp_path)
    before = snapshot(op.root)
    rows = moves(op)
    targets = [op.root / os.fsdecode(row["dst"]) for row in rows]
    created: dict[Path, bytes] = {}
    started = threading.Event()

    def writer() -> None:
        """Claims each destination in the order the apply reaches them, from the moment the
        apply has made its first move: it races the apply at its front."""
        started.wait()
        deadline = time.monotonic() + 10
        while not any(t.exists() for t in targets) and time.monotonic() < deadline:
            time.sleep(0)
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            content = f"theirs: {target.name}".encode()
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue  # the apply got there first
            os.write(fd, content)
            os.close(fd)
            created[target] = content

    thread = threading.Thread(target=writer)
    thread.start()
    started.set()
    try:
        counts = op.apply()
    finally:
        thread.join()

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
    tmp_path: Path,
) -> None:
    op, outside = inbox(tmp_path, files=300)
    away = tmp_path / "away"
    away.mkdir()
    outside_before, away_before = snapshot(outside), snapshot(away)
    before = contents(snapshot(op.root))
    swaps: list[str] = []

    finished = threading.Event()

    def swap(name: str, target: Path) -> None:
        """Once the apply has moved its first document, move `name` aside within the root and
        put a symlink to `target` in its place; again if the apply makes it anew meanwhile."""
        path = op.root / name
        while not (op.root / "Documents").exists():
            if finished.is_set():
                return
            time.sleep(0)
        for attempt in range(5):
            try:
                os.rename(path, op.root / f"{name}-moved-{attempt}")
                path.symlink_to(target)
            except (FileNotFoundError, FileExistsError):
                continue
            swaps.append(name)
            return

    threads = [
        threading.Thread(target=swap, args=("Documents", away)),
        threading.Thread(target=swap, args=("inbox", outside)),
    ]
    for thread in threads:
        thread.start()
    try:
        counts = op.apply()
    finally:
        finished.set()
        for thread in threads:
            thread.join()

    assert set(counts) <= {"done", "unsafe", "vanished"}, counts  # "changed": a decoy was read
    assert sum(counts.values()) == 300
    assert snapshot(outside) == outside_before
    assert snapshot(away) == away_before
    assert contents(snapshot(op.root)) == before, (swaps, counts)

    op.rollback()

    assert snapshot(outside) == outside_before
    assert snapshot(away) == away_before
    assert contents(snapshot(op.root)) == before
