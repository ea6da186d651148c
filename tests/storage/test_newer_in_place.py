"""storage.rollback_order: an operation is not rolled back while a newer operation's moves
are in place under an overlapping root."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.locations import DataStore
from storage.operations import record_path
from storage.rollback_order import newer_in_place, rollback_refusal
from tests.storage.test_operations import saved

OLD = "0000aaaa-0000-4000-8000-000000000001"
NEW = "0000bbbb-0000-4000-8000-000000000002"


@pytest.fixture
def store(tmp_path: Path) -> DataStore:
    return DataStore(str(tmp_path / "data"))


@pytest.mark.parametrize(
    ("root", "status", "minutes", "on_top"),
    [
        ("/t/root", "applied", 5, True),
        ("/t/root/sub", "partial", 5, True),  # a root inside: its moves are under ours
        ("/t", "applied", 5, True),  # a root above: moved ours again
        ("/t/root", "rollback_incomplete", 5, True),  # partly undone: the rest is on top
        ("/t/root", "interrupted", 5, True),  # stopped while applying: may have moved some
        ("/t/root", "rolled_back", 5, False),  # undone first: nothing on top
        ("/t/root", "planned", 5, False),  # never applied
        ("/t/other", "applied", 5, False),  # another tree
        ("/t/root", "applied", -5, False),  # applied before ours: ours is the newest
    ],
)
def test_a_newer_operations_moves_in_place_block_the_rollback(
    store: DataStore, root: str, status: str, minutes: int, on_top: bool
) -> None:
    record = saved(store, OLD, status="applied", minutes=0)
    other = saved(store, NEW, root=root, status=status, minutes=minutes)
    if status == "interrupted":  # interrupted in apply, not while planning
        other.stage = "apply"
        store.write_bytes(record_path(store, NEW), other.model_dump_json().encode())

    found = newer_in_place(store, record)

    assert (found.id if found else None) == (NEW if on_top else None)
    refusal = rollback_refusal(store, record)
    if on_top:
        assert refusal == (
            f"operation {NEW} ({status}, {other.updated_at.astimezone():%Y-%m-%d %H:%M}) moved"
            f" files under {root} after {OLD} was applied: roll it back first"
            f" (fileorg rollback {NEW})"
        )
        anonymous = rollback_refusal(store, record, name_it=False)
        assert anonymous is not None and NEW not in anonymous
        assert anonymous.startswith("another operation moved files under /t/root after")
    else:
        assert refusal is None
