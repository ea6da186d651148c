"""tasks.apply.items: the items made from a plan's columns are the items made from its rows,
and an item's intent line is the encoder's line of its intent entry, so the fast paths write
the journal the row-by-row path wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from storage import manifests
from storage.journal import encode_entry, read_lines
from storage.operations import PlanOptions
from tasks.apply.fsops import Identity
from tasks.apply.items import ITEM_COLUMNS, Item, items_from_columns, items_from_plan
from tasks.apply.rollback import undo_items
from tasks.apply.stage import columns_of, kept_identities
from tests.apply_helpers import Operation

TEXT = b"the same words in every copy\n"


def as_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names = dict.fromkeys(name for row in rows for name in row)
    return {name: [row.get(name) for row in rows] for name in names}


@pytest.fixture
def op(tmp_path: Path) -> Operation:
    """A plan with moves, names that are not UTF-8, and duplicates to hard-link."""
    op = Operation(tmp_path, PlanOptions(mode="category", duplicates="hardlink"))
    files = {
        "inbox/a.txt": TEXT,
        "old/copy 1.txt": TEXT,
        "old/copy 2.txt": TEXT,
        "inbox/b.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 bravo",
        'inbox/"quoted" \\ name.pdf': b"%PDF-1.4 delta",
    }
    for rel, data in files.items():
        (op.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (op.root / rel).write_bytes(data)
    (op.root / "inbox").joinpath(b"caf\xe9.txt".decode("utf-8", "surrogateescape")).write_bytes(
        b"latin-1 name"
    )
    op.plan()
    return op


@pytest.mark.parametrize("phase", ["move", "link"])
def test_items_from_a_plans_columns_are_the_items_from_its_rows(op: Operation, phase: str) -> None:
    path = manifests.shard_path(op.op_dir, "plan", 0)
    table = manifests.read_table(op.store, path, ITEM_COLUMNS)
    kept = kept_identities(op.store, op.op_dir)
    expected_items = items_from_plan(table.to_pylist(), phase, 0, kept)

    items = items_from_columns(columns_of(table), phase, 0, kept)

    assert items == expected_items
    assert {i.action for i in items} == ({"move"} if phase == "move" else {"hardlink"})


def test_columns_without_the_optional_ones_and_with_etags_make_the_same_items() -> None:
    rows = [
        {"src": b"a/x", "dst": b"b/x", "action": "move", "dev": 1, "ino": 2, "size": 3,
         "mtime_ns": 4, "etag": '"e1"'},
        {"src": b"p", "dst": b"Projects/p", "action": "move", "dev": 1, "ino": 5, "size": 0,
         "mtime_ns": 6, "etag": None, "kind": "dir"},
        {"src": b"k", "dst": b"k", "action": "keep", "dev": 1, "ino": 7, "size": 1,
         "mtime_ns": 8, "etag": None},
        {"src": b"q", "dst": b"Duplicates/q", "action": "quarantine", "dev": 1, "ino": 9,
         "size": 1, "mtime_ns": 8, "etag": '"e2"'},
    ]  # fmt: skip
    columns = as_columns(rows)
    without_kind = {k: v for k, v in columns.items() if k != "kind"}

    assert items_from_columns(columns, "move", 3, {}) == items_from_plan(rows, "move", 3, {})
    assert [i.action for i in items_from_columns(columns, "move", 3, {})] == [
        "move",
        "move-dir",
        "quarantine",
    ]
    assert items_from_columns(without_kind, "move", 3, {})[1].action == "move"


def item_lines_are_the_encoders(items: list[Item]) -> None:
    for item in items:
        assert item.intent_line() == encode_entry(item.intent())


def test_every_items_intent_line_is_the_encoders_line_of_its_intent(op: Operation) -> None:
    kept = kept_identities(op.store, op.op_dir)
    rows = list(op.rows().values())
    linked = Item(
        "link-0-1", "hardlink", b"x", b"x", Identity(1, 2, 3, 4), link_to=b"y",
        kept=Identity(1, 5, 3, 4), digest=b"\x01" * 32,
    )  # fmt: skip
    with_etag = Item("move-0-2", "move", b"a", b"b", Identity(0, 2, 3, 4), etag='"abc"')

    item_lines_are_the_encoders(items_from_plan(rows, "move", 0, kept))
    item_lines_are_the_encoders(items_from_plan(rows, "link", 0, kept))
    item_lines_are_the_encoders([linked, with_etag])


def test_apply_and_rollback_journals_are_jsons_lines_byte_for_byte(op: Operation) -> None:
    """What every reader of every version reads: each line as json.dumps writes its entry."""
    op.apply()
    op.rollback()
    found = sorted(Path(op.op_dir, "journal").rglob("*.jsonl"))
    undone = [item for path in op.journals() for item in undo_items(path)]

    assert len(found) >= 3 and undone  # apply's moves and links, and their rollbacks
    for path in found:
        lines = [line for line in read_lines(str(path)) if line]
        assert lines
        for line in lines:
            assert line == json.dumps(json.loads(line), ensure_ascii=True).encode()
    item_lines_are_the_encoders(undone)
