"""The guarantees of apply and rollback, each written once and run on both backends: a temporary
folder and a bucket on moto's server (the `root` fixture, tests/tasks/conftest.py).

Apply never overwrites, journals each item's intent before acting on it, re-checks each source
against the scan, can be interrupted and resumed (or rolled back) at any point; rollback gives
back exactly the tree that was planned; planning (the dry run) changes nothing. What is only
one backend's (hard links, folders, cross-device copies, object ETags) is tested beside it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from storage.journal import Journal, applied_journals, apply_journal, read_journal
from storage.locations import DataStore
from storage.operations import PlanOptions
from tasks.apply import engine
from tasks.apply.items import Item, items_from_columns
from tasks.backends import backend_for
from tests.apply_helpers import apply_all, plan_rows, plan_tree, rollback_all
from tests.roots import TreeRoot

FILES = {
    b"inbox/a.txt": b"alpha",
    b"inbox/b.txt": b"bravo",
    b"inbox/sub/c.txt": b"charlie",
    b"inbox/caf\xc3\xa9 \xe2\x98\x83.txt": b"delta",
    b"e.txt": b"echo",
}


class Planned:
    """An operation planned (scan, classify, hash, plan) on `root`, its data folder local."""

    def __init__(self, root: TreeRoot, base: Path) -> None:
        for rel, data in FILES.items():
            root.write(rel, data)
        self.root = root
        self.store = DataStore(str(base / "data"))
        op_id = str(uuid.uuid4())
        self.op_dir = self.store.operation_dir(op_id)
        self.before = root.snapshot()
        plan_tree(self.store, op_id, root.url, PlanOptions(mode="category"))

    def moves(self) -> dict[bytes, bytes]:
        """Source -> destination of every planned move."""
        rows = plan_rows(self.store, self.op_dir)
        return {r["src"]: r["dst"] for r in rows if r["action"] in ("move", "quarantine")}

    def applied(self) -> dict[bytes, bytes]:
        """What the tree holds after a complete apply of the plan."""
        moves = self.moves()
        return {moves.get(rel, rel): data for rel, data in self.before.items()}

    def apply(self) -> Counter[str]:
        return apply_all(self.store, self.op_dir, self.root.url)

    def rollback(self) -> Counter[str]:
        return rollback_all(self.store, self.op_dir, self.root.url)

    def journal(self) -> str:
        return apply_journal(self.store, self.op_dir, "move", 0)

    def outcomes(self) -> dict[bytes, str]:
        """Source -> the reason apply gave for not moving it."""
        entries = [e for j in applied_journals(self.store, self.op_dir) for e in read_journal(j)]
        src = {e["seq"]: e["src"].encode() for e in entries if e["phase"] == "intent"}
        return {src[e["seq"]]: e["reason"] for e in entries if e["phase"] == "skipped"}


@pytest.fixture
def planned(root: TreeRoot, tmp_path: Path) -> Planned:
    return Planned(root, tmp_path)


def test_the_dry_run_changes_nothing(planned: Planned) -> None:
    assert planned.root.snapshot() == planned.before
    assert len(planned.moves()) == len(FILES)  # and it did plan every file to move


def test_apply_carries_out_the_plan_and_rollback_gives_back_exactly_the_tree(
    planned: Planned,
) -> None:
    applied = planned.apply()
    during = planned.root.snapshot()
    undone = planned.rollback()

    assert applied == undone == Counter(done=len(FILES))
    assert during == planned.applied()
    assert planned.root.snapshot() == planned.before


def test_every_intent_is_journaled_before_its_item_is_carried_out(planned: Planned) -> None:
    planned.apply()

    phases = [(e["seq"], e["phase"]) for e in read_journal(planned.journal())]
    seqs = {seq for seq, phase in phases if phase == "done"}
    assert len(seqs) == len(FILES)
    for seq in seqs:
        assert phases.index((seq, "intent")) < phases.index((seq, "done"))


def test_a_destination_taken_after_the_plan_is_never_overwritten(planned: Planned) -> None:
    src = b"inbox/a.txt"
    dst = planned.moves()[src]
    planned.root.write(dst, b"somebody else's")

    counts = planned.apply()

    assert counts == Counter(done=len(FILES) - 1, conflicts=1)
    assert planned.root.read(dst) == b"somebody else's"
    assert planned.root.read(src) == b"alpha"
    assert planned.outcomes()[src].startswith("conflict")


@pytest.mark.parametrize(
    ("how", "expected_key"), [("rewritten", "changed"), ("removed", "vanished")]
)
def test_a_source_changed_or_gone_since_the_scan_is_not_moved(
    planned: Planned, how: str, expected_key: str
) -> None:
    src = b"inbox/b.txt"
    planned.root.remove(src)
    if how == "rewritten":
        planned.root.write(src, b"BRAVO, rewritten after the scan")

    counts = planned.apply()

    assert counts == Counter({"done": len(FILES) - 1, expected_key: 1})
    assert planned.root.exists(src) == (how == "rewritten")
    assert not planned.root.exists(planned.moves()[src])
    assert (
        planned.outcomes()[src] == f"{'changed' if how == 'rewritten' else 'vanished'} since scan"
    )


def test_a_second_apply_and_a_second_rollback_change_nothing(planned: Planned) -> None:
    first = planned.apply()
    after = planned.root.snapshot()
    second = planned.apply()
    assert second == first
    assert planned.root.snapshot() == after

    planned.rollback()
    again = planned.rollback()
    assert again == Counter(done=len(FILES))  # counted from its journal, nothing redone
    assert planned.root.snapshot() == planned.before


@pytest.mark.parametrize("then", ["resume", "rollback"])
def test_an_apply_interrupted_after_its_intents_resumes_or_rolls_back(
    planned: Planned, then: str
) -> None:
    """Killed between the intents and the first change (the intents are durable, nothing
    moved): the same command finishes every move once, or rollback gives back the tree."""
    items = _plan_items(planned)
    with Journal(planned.journal()) as journal:
        for item in items:
            journal.add(item.intent())

    counts = planned.apply() if then == "resume" else planned.rollback()

    if then == "resume":
        assert counts == Counter(done=len(FILES))
        assert planned.root.snapshot() == planned.applied()
    else:
        assert planned.root.snapshot() == planned.before


def test_an_apply_cut_after_its_first_items_resumes_and_rolls_back_whole(planned: Planned) -> None:
    items = _plan_items(planned)
    where = backend_for(planned.root.url).apply()
    first = engine.carry_out(where.mover(), items[:2], planned.journal())

    resumed = planned.apply()
    undone = planned.rollback()

    assert first == Counter(done=2)
    assert resumed == undone == Counter(done=len(FILES))
    assert planned.root.snapshot() == planned.before


def test_rollback_never_overwrites_an_original_path_taken_again(planned: Planned) -> None:
    planned.apply()
    src = b"inbox/a.txt"
    planned.root.write(src, b"a new file with the old name")

    counts = planned.rollback()

    assert counts == Counter(done=len(FILES) - 1, conflicts=1)
    assert planned.root.read(src) == b"a new file with the old name"
    assert planned.root.read(planned.moves()[src]) == b"alpha"


def _plan_items(planned: Planned) -> list[Item]:
    where = backend_for(planned.root.url).apply()
    return items_from_columns(where.plan_columns(planned.store, planned.op_dir, 0), "move", 0, {})
