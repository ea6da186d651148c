"""Outcomes per file from real apply and rollback journals, joined with the plan; the tree a
plan would leave. The tree is planned, applied and rolled back with the plain functions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import queries
from storage.operations import PlanOptions
from storage.outcomes import NOT_DONE_APPLY, NOT_DONE_ROLLBACK, outcome_table
from storage.previews import resulting_tree
from tests.apply_helpers import Operation, moved_paths

FILES = {
    b"inbox/a.txt": b"alpha",
    b"inbox/b.txt": b"bravo",
    b"inbox/c.txt": b"charlie",
    b"inbox/d.txt": b"delta",
    b"inbox/e.txt": b"echo",
    b"notes/f.txt": b"foxtrot",
}


@pytest.fixture
def op(tmp_path: Path) -> Operation:
    operation = Operation(tmp_path, PlanOptions(mode="category"))
    for rel, content in FILES.items():
        path = operation.root / os.fsdecode(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    operation.plan()
    return operation


def disturb(op: Operation) -> dict[bytes, tuple[str, str]]:
    """Change the tree after the plan; returns what apply must say of each disturbed file."""
    dst = {src: row["dst"] for src, row in op.rows().items()}
    with open(op.root / "inbox/a.txt", "ab") as fh:
        fh.write(b" and more")
    (op.root / "inbox/b.txt").unlink()
    taken = op.root / os.fsdecode(dst[b"inbox/c.txt"])
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.write_bytes(b"someone else's")
    return {
        b"inbox/a.txt": ("skipped", "changed since scan"),
        b"inbox/b.txt": ("skipped", "vanished since scan"),
        b"inbox/c.txt": ("conflict", "conflict: destination exists"),
    }


def test_apply_outcomes_say_what_became_of_each_file(op: Operation) -> None:
    expected = disturb(op)
    counts = op.apply()

    found = {
        r["src"]: (r["apply_outcome"], r["outcome_reason"])
        for r in queries.plan_rows(op.store, op.op_dir, limit=None)[0]
    }

    assert counts["done"] == 3  # the situation: three moved, three not
    assert found == {
        **expected,
        b"inbox/d.txt": ("applied", None),
        b"inbox/e.txt": ("applied", None),
        b"notes/f.txt": ("applied", None),
    }


def test_plan_rows_filter_by_outcome_and_sample_counts(op: Operation) -> None:
    disturb(op)
    op.apply()

    skipped, total = queries.plan_rows(op.store, op.op_dir, outcome="skipped")
    rows, counts = queries.outcome_sample(op.store, op.op_dir, NOT_DONE_APPLY, limit=2)

    assert [r["src"] for r in skipped] == [b"inbox/a.txt", b"inbox/b.txt"] and total == 2
    assert counts == {"skipped": 2, "conflict": 1}
    assert [(r["src"], r["outcome"]) for r in rows] == [
        (b"inbox/a.txt", "skipped"),
        (b"inbox/b.txt", "skipped"),
    ]
    unfiltered, everything = queries.plan_rows(op.store, op.op_dir, limit=None)
    assert everything == len(FILES)
    assert {r["src"]: r["apply_outcome"] for r in unfiltered}[b"notes/f.txt"] == "applied"


def test_rollback_outcomes_name_the_files_it_could_not_restore(op: Operation) -> None:
    op.apply()
    (op.root / "notes").mkdir(exist_ok=True)
    (op.root / "notes/f.txt").write_bytes(b"a new file where f.txt was")

    refused = sum(v for k, v in op.rollback().items() if k != "done")
    rows, counts = queries.outcome_sample(op.store, op.op_dir, NOT_DONE_ROLLBACK, of="rollback")
    by_src = {r["src"]: r for r in queries.plan_rows(op.store, op.op_dir, limit=None)[0]}

    assert refused == 1
    assert counts == {"refused": 1}
    assert [(r["src"], r["outcome_reason"]) for r in rows] == [
        (b"notes/f.txt", "its original path is taken")
    ]
    assert by_src[b"inbox/a.txt"]["rollback_outcome"] == "restored"
    listed, _ = queries.plan_rows(op.store, op.op_dir, outcome="refused")
    assert [r["src"] for r in listed] == [b"notes/f.txt"]


def test_no_journal_means_no_outcomes(op: Operation) -> None:
    rows, total = queries.plan_rows(op.store, op.op_dir, outcome="applied")

    assert (rows, total) == ([], 0)
    assert outcome_table(op.store, op.op_dir).num_rows == 0


def test_the_resulting_tree_counts_where_files_end(op: Operation) -> None:
    final = moved_paths(op.rows().values())
    expected: dict[bytes, int] = {}
    for path in final.values():
        parts = path.split(b"/")[:-1]
        for level in range(min(2, len(parts)) + 1):
            key = b"/".join(parts[:level])
            expected[key] = expected.get(key, 0) + 1

    folders = resulting_tree(op.store, op.op_dir, depth=2)

    assert {f.path: f.files for f in folders} == expected
    assert folders[0].path == b"" and folders[0].files == len(FILES)
    assert folders[0].bytes == sum(len(c) for c in FILES.values())
    assert folders[0].arriving == sum(1 for s, d in final.items() if s != d)
    assert [f.path for f in folders] == sorted(
        (f.path for f in folders), key=lambda p: p.split(b"/") if p else []
    )


@pytest.mark.parametrize("on_manifest", [False, True], ids=["shards", "manifest"])
def test_every_file_the_plan_skipped_is_listed_as_skipped_after_apply(
    tmp_path: Path, on_manifest: bool
) -> None:
    """The tryout: apply's summary said "skipped 10" (the plan's skip rows: left alone,
    duplicates in place) and `fileorg plan ID --outcome skipped` listed none of them."""
    op = Operation(tmp_path, PlanOptions(mode="category"))
    tree = {**FILES, b".hidden.txt": b"hidden", b".DS_Store": b"junk", b"Text/a.txt": b"alpha"}
    for rel, content in tree.items():
        path = op.root / os.fsdecode(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    op.plan()
    plan_skips = {src: row["reason"] for src, row in op.rows().items() if row["action"] == "skip"}
    assert len(plan_skips) >= 3  # hidden, junk, and inbox/a.txt: its twin is at Text/a.txt
    before, _ = queries.plan_rows(op.store, op.op_dir, outcome="skipped", limit=None)
    assert before == []  # not applied yet: nothing has an outcome
    disturb_b = op.root / "inbox/b.txt"
    disturb_b.unlink()  # skipped by apply itself: vanished
    op.apply()
    if on_manifest:
        queries.build_listing(op.store, op.op_dir, include_empty=False)

    page = queries.plan_page(op.store, op.op_dir, 100, outcome="skipped")

    found = {r["src"]: (r["apply_outcome"], r["outcome_reason"]) for r in page.rows}
    expected = {src: ("skipped", why) for src, why in plan_skips.items()}
    assert found == {**expected, b"inbox/b.txt": ("skipped", "vanished since scan")}
    assert page.count == len(found)
    every = {r["src"]: r["apply_outcome"] for r in queries.plan_page(op.store, op.op_dir, 100).rows}
    assert {src for src, outcome in every.items() if outcome == "skipped"} == set(found)
