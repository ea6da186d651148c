"""Projects moved whole: one rename, re-checked, journaled, never over anything, undone exactly;
refused with a reason across devices and where no rename can refuse to replace."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storage.journal import read_journal
from storage.operations import PlanOptions
from tasks.apply import folders, fsops
from tasks.apply.items import MOVE_DIR
from tests.apply_helpers import Operation, differences
from tests.trees import snapshot


def project_tree(base: Path) -> Operation:
    """A git project with nested folders, a loose photo, and a second project."""
    op = Operation(base, PlanOptions(mode="category", projects="move"))
    for rel, content in {
        "Code/app/.git/HEAD": b"ref: refs/heads/main\n",
        "Code/app/pyproject.toml": b"[project]\nname = 'app'\n",
        "Code/app/src/app/__init__.py": b"",
        "Code/app/docs/logo.png": b"\x89PNG\r\n\x1a\n logo",
        "other/tool/Makefile": b"all:\n",
        "photo.jpg": b"\xff\xd8\xff\xe0 photo",
    }.items():
        path = op.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return op


def test_a_project_moves_by_one_rename_and_rolls_back_exactly(tmp_path: Path) -> None:
    op = project_tree(tmp_path)
    before = snapshot(op.root)
    inode = os.lstat(op.root / "Code/app").st_ino
    op.plan()

    counts = op.apply()

    assert counts == {"done": 3}
    assert os.lstat(op.root / "Projects/app").st_ino == inode  # the same folder, renamed
    assert (op.root / "Projects/app/docs/logo.png").read_bytes() == b"\x89PNG\r\n\x1a\n logo"
    assert (op.root / "Projects/tool/Makefile").exists()
    assert not (op.root / "Code/app").exists()
    intents = [e for j in op.journals() for e in read_journal(j) if e["phase"] == "intent"]
    assert sorted(e["action"] for e in intents) == ["move", MOVE_DIR, MOVE_DIR]

    assert op.rollback() == {"done": 3}
    assert differences(before, snapshot(op.root)) == []


def test_rollback_brings_the_project_back_with_work_done_in_it_since(tmp_path: Path) -> None:
    op = project_tree(tmp_path)
    op.plan()
    op.apply()
    (op.root / "Projects/app/NEW.md").write_bytes(b"written after apply\n")

    assert op.rollback() == {"done": 3}
    assert (op.root / "Code/app/NEW.md").read_bytes() == b"written after apply\n"


Change = Callable[[Path], None]


def _add_file(root: Path) -> None:
    (root / "Code/app/notes.txt").write_bytes(b"someone is working here\n")


def _replace_folder(root: Path) -> None:
    os.rename(root / "Code/app", root / "Code/app-old")
    (root / "Code/app").mkdir()


def _take_destination(root: Path) -> None:
    (root / "Projects/app").mkdir(parents=True)


@pytest.mark.parametrize(
    ("change", "expected_reason"),
    [
        (_add_file, "changed since scan"),
        (_replace_folder, "changed since scan"),
        (lambda root: os.rename(root / "Code/app", root / "gone"), "vanished since scan"),
        (_take_destination, "conflict: destination exists"),
    ],
)
def test_a_project_that_changed_or_whose_destination_appeared_stays(
    tmp_path: Path, change: Change, expected_reason: str
) -> None:
    op = project_tree(tmp_path)
    op.plan()
    change(op.root)
    before = snapshot(op.root)

    counts = op.apply()

    assert counts["done"] == 2, counts  # the photo and the other project
    outcomes = [e for j in op.journals() for e in read_journal(j) if e["phase"] == "skipped"]
    assert [e["reason"] for e in outcomes] == [expected_reason]
    after = snapshot(op.root)
    kept = [p for p, e in before.items() if e.kind == "file" and not p.startswith(b"other/")]
    assert {p: after[p] for p in kept if p != b"photo.jpg"} == {
        p: before[p] for p in kept if p != b"photo.jpg"
    }


def _refusing(errno_value: int) -> Callable[..., Any]:
    def rename(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
        raise OSError(errno_value, os.strerror(errno_value))

    return rename


@pytest.mark.parametrize(
    ("patch", "expected_reason"),
    [
        (
            ("rename_dir_noreplace", _refusing(errno.EXDEV)),
            "on another device: a folder moves by one rename only",
        ),
        (
            ("_renameat2", None),  # no RENAME_NOREPLACE at all: link() cannot take a folder
            "this filesystem cannot rename a folder without risk of replacing",
        ),
    ],
)
def test_a_folder_that_no_safe_rename_can_move_is_left_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patch: tuple[str, Any], expected_reason: str
) -> None:
    op = project_tree(tmp_path)
    op.plan()
    name, value = patch
    monkeypatch.setattr(folders if name == "rename_dir_noreplace" else fsops, name, value)
    before = snapshot(op.root)

    op.apply()  # file moves fall back to link() + unlink() without renameat2, as they do

    outcomes = [e for j in op.journals() for e in read_journal(j) if e["phase"] == "skipped"]
    assert [e["reason"] for e in outcomes] == [expected_reason] * 2
    after = snapshot(op.root)
    assert {p: e for p, e in after.items() if p.startswith(b"Code")} == {
        p: e for p, e in before.items() if p.startswith(b"Code")
    }
    # Only the folder made for the refused rename is there, empty: nothing moved into it.
    assert [p for p in after if p.startswith(b"Projects")] == [b"Projects"]


def test_a_project_on_another_device_is_not_planned_to_move(tmp_path: Path) -> None:
    from tasks.plan.layout import parse_layout
    from tasks.plan.planner import FileFacts, PlanPolicy, plan_moves

    mount = FileFacts(b"mnt/app", "dir", dev=9, ino=5, left_alone="project", rule=".git")
    here = FileFacts(b"Code/app", "dir", dev=1, ino=6, left_alone="project", rule=".git")
    policy = PlanPolicy(layout=parse_layout("category"), projects="move")

    plan = {m.src: m for m in plan_moves([mount, here], policy, root_dev=1)}

    assert (plan[b"mnt/app"].action, plan[b"mnt/app"].reason_code) == ("skip", "project")
    assert "another device" in plan[b"mnt/app"].reason
    assert plan[b"Code/app"].dst == b"Projects/app"
