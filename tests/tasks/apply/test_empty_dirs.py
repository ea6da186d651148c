"""Folders apply emptied (issue 11): removed after the moves, journaled before each removal,
re-created with their mode and times by rollback; never the root, never a folder that was
empty before, never one that still holds anything; `keep_empty_folders` keeps them all."""

from __future__ import annotations

import json
import os
from pathlib import Path

from storage.journal import read_journal
from storage.operations import PlanOptions
from tasks.apply import dirs
from tasks.apply import stage as apply
from tasks.apply.stage import LocalApply
from tests.apply_helpers import Operation, differences
from tests.trees import Entry, snapshot

STAMP = 1_555_083_000 * 10**9


def messy(base: Path, **options: object) -> Operation:
    """inbox/ and inbox/sub/ hold only files that move; notes/ keeps a hidden file (left
    alone); empty/ was empty before; deep/a/b/ holds one file; the root holds one too."""
    op = Operation(base, PlanOptions(mode="category", **options))  # type: ignore[arg-type]
    files = {
        "inbox/a.txt": b"alpha",
        "inbox/sub/b.txt": b"bravo",
        "notes/c.txt": b"charlie",
        "notes/.keep": b"",
        "deep/a/b/d.txt": b"delta",
        "e.txt": b"echo",
    }
    for i, (rel, content) in enumerate(files.items()):
        path = op.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(STAMP + i, STAMP + i))
    (op.root / "empty").mkdir()
    os.chmod(op.root / "inbox" / "sub", 0o750)
    if os.geteuid() == 0:  # a service run as root organizes folders other users own
        os.chown(op.root / "inbox" / "sub", 1234, 1234)
    for i, rel in enumerate(["empty", "inbox/sub", "inbox", "notes", "deep/a/b", "deep/a", "deep"]):
        os.utime(op.root / rel, ns=(STAMP - i * 10**9, STAMP - i * 10**9))
    os.utime(op.root, ns=(STAMP - 99 * 10**9, STAMP - 99 * 10**9))
    return op


def folders(snap: dict[bytes, Entry]) -> dict[bytes, tuple[int, int]]:
    """Every folder with its mode and mtime: a round trip gives both back."""
    return {p: (e.mode, e.mtime_ns) for p, e in snap.items() if e.kind == "dir"}


def test_apply_removes_only_the_folders_it_emptied(tmp_path: Path) -> None:
    op = messy(tmp_path)
    op.plan()

    op.apply()

    after = snapshot(op.root)
    for gone in (b"inbox", b"inbox/sub", b"deep", b"deep/a", b"deep/a/b"):
        assert gone not in after
    assert b"notes/.keep" in after  # a hidden file left alone keeps its folder
    assert b"empty" in after  # empty before apply: not apply's to remove
    assert (op.root / "Documents" / "d.txt").read_bytes() == b"delta"


def test_each_removal_is_journaled_before_it_happens(tmp_path: Path) -> None:
    op = messy(tmp_path)
    op.plan()
    op.apply()

    entries = read_journal(apply.rmdir_journal(op.store, op.op_dir))
    order = [(e["phase"], e.get("path") or e["seq"].partition(":")[2]) for e in entries]
    for path in ("inbox", "inbox/sub", "deep", "deep/a", "deep/a/b"):
        assert order.index(("rmdir", path)) < order.index(("removed", path))
    removed = [p for phase, p in order if phase == "removed"]
    assert removed.index("inbox/sub") < removed.index("inbox")  # deepest first


def test_rollback_recreates_them_with_their_mode_and_times(tmp_path: Path) -> None:
    op = messy(tmp_path)
    before = snapshot(op.root)
    op.plan()
    op.apply()

    op.rollback()

    after = snapshot(op.root)
    assert differences(before, after) == []
    assert folders(after) == folders(before)
    if os.geteuid() == 0:
        assert os.stat(op.root / "inbox" / "sub").st_uid == 1234


def test_keep_empty_folders_keeps_them(tmp_path: Path) -> None:
    op = messy(tmp_path, keep_empty_folders=True)
    before = snapshot(op.root)
    op.plan()

    op.apply()

    after = snapshot(op.root)
    assert {b"inbox", b"inbox/sub", b"deep/a/b"} <= set(after)
    op.rollback()
    assert folders(snapshot(op.root)) == folders(before)


def test_a_removal_cut_short_is_finished_and_rolled_back(tmp_path: Path) -> None:
    """kill -9 between the journaled intent and its outcome: the folder may be gone or not;
    running apply again records what happened, and rollback re-creates it either way."""
    op = messy(tmp_path)
    before = snapshot(op.root)
    op.plan()
    op.apply()
    journal = apply.rmdir_journal(op.store, op.op_dir)
    with open(journal, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if b'"removed"' in line and b"deep/a/b" in line)
    with open(journal, "wb") as fh:
        fh.writelines(lines[:cut])  # the crash came right after the rmdir of deep/a/b
    later = [json.loads(line) for line in lines[cut:]]
    undone = sorted(e["path"] for e in later if e["phase"] == "rmdir")
    modes = {e["path"]: e["mode"] for e in later if e["phase"] == "rmdir"}
    for rel in undone:  # ...so the folders after it were never removed
        os.mkdir(op.root / rel)
        os.chmod(op.root / rel, modes[rel] & 0o7777)
    first = {}  # a folder's times before anything was removed from it: its first record
    for e in later:
        if e["phase"] in ("rmdir", "dirmeta") and e["path"] in undone:
            first.setdefault(e["path"], (e["atime_ns"], e["mtime_ns"]))
    for rel, ns in first.items():
        os.utime(op.root / rel, ns=ns)
    assert undone and not (op.root / "deep/a/b").exists()

    assert apply.remove_emptied(op.store, op.op_dir, LocalApply(str(op.root))) == 5
    latest = {e["seq"]: e for e in read_journal(journal)}
    assert latest["rmdir:deep/a/b"].get("recovered") is True
    assert not (op.root / "deep").exists() and not (op.root / "inbox").exists()

    op.rollback()
    assert folders(snapshot(op.root)) == folders(before)


def test_ancestors_stop_below_the_root() -> None:
    assert dirs.ancestors([b"a/b/c.txt", b"d.txt", b"a/e"]) == {b"a", b"a/b"}
