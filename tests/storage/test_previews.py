"""The resulting tree (one GROUP BY in DuckDB) against the loop over every plan row it replaced,
kept here as the reference: on generated plans, names that are not UTF-8, hex digits that
look like a "/" across two bytes, links and folders beside files, moves beside files that
stay, plans spread over several shards."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import defaultdict
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import manifests
from storage.locations import DataStore
from storage.previews import MOVING, Folder, resulting_tree


def reference_tree(store: DataStore, op_dir: str, depth: int = 2) -> list[Folder]:
    """storage.previews.resulting_tree as it was: one Python tuple per plan row."""
    folders: dict[bytes, Folder] = defaultdict(lambda: Folder(b""))
    columns = ["src", "dst", "action", "size", "kind"]
    for path in manifests.shard_paths(store, op_dir, "plan"):
        table = manifests.read_table(store, path, columns=columns).to_pydict()
        for src, dst, action, size, kind in zip(*(table[c] for c in columns), strict=True):
            if kind != "file":
                continue
            moving = action in MOVING and dst is not None
            parts = (dst if moving else src).split(b"/")[:-1]
            for level in range(min(depth, len(parts)) + 1):
                key = b"/".join(parts[:level])
                folder = folders[key]
                folder.path = key
                folder.files += 1
                folder.bytes += size or 0
                folder.arriving += int(moving)
    return [folders[k] for k in sorted(folders, key=lambda p: p.split(b"/") if p else [])]


# Bytes chosen to be hard: 0x2F is "/", 0x12 0xF3 hides "2F" across two bytes in hex, 0xFF
# and 0xE9 are not UTF-8 alone, "-" and "." sort before "/", "0" after it.
_BYTES = st.sampled_from([b"a", b"B", b"-", b".", b"0", b"\x12", b"\xf3", b"\xe9", b"\xff", b" "])
_NAME = st.lists(_BYTES, min_size=1, max_size=4).map(b"".join)
_PATH = st.lists(_NAME, min_size=1, max_size=5).map(b"/".join)
_ROW = st.fixed_dictionaries(
    {
        "src": _PATH,
        "dst": st.none() | _PATH,
        "action": st.sampled_from(["move", "keep", "skip", "quarantine", "hardlink"]),
        "size": st.none() | st.integers(0, 2**40),
        "kind": st.sampled_from(["file", "file", "file", "dir", "symlink", "error"]),
    }
)


def write_plan(store: DataStore, op_dir: str, shards: list[list[dict[str, Any]]]) -> None:
    for index, rows in enumerate(shards):
        table = pa.Table.from_pylist(rows, schema=manifests.PLAN)
        manifests.write_table(store, manifests.shard_path(op_dir, "plan", index), table)


def both(shards: list[list[dict[str, Any]]], depth: int) -> tuple[list[Folder], list[Folder]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = DataStore(os.path.join(tmp, "data"))
        op_dir = store.operation_dir(str(uuid.uuid4()))
        write_plan(store, op_dir, shards)
        return resulting_tree(store, op_dir, depth), reference_tree(store, op_dir, depth)


@settings(max_examples=int(os.environ.get("PLAN_EXAMPLES", "150")), deadline=None)
@given(st.lists(st.lists(_ROW, max_size=12), min_size=1, max_size=3), st.integers(0, 3))
def test_the_tree_is_the_reference_loops_on_generated_plans(
    shards: list[list[dict[str, Any]]], depth: int
) -> None:
    found, expected = both(shards, depth)

    assert found == expected


def test_the_tree_of_a_nasty_plan_is_the_reference_loops() -> None:
    rows = [
        {"src": b"caf\xe9/\xff.jpg", "dst": b"Images/\xff\xfe/\xff.jpg", "action": "move"},
        {"src": b"\x12\xf3/x", "dst": b"\x12\xf3/y/z/w", "action": "quarantine", "size": 7},
        {"src": b"a-b/c", "dst": None, "action": "move", "size": 3},  # no destination: stays
        {"src": b"a/b/c/d/e", "dst": b"a/b", "action": "keep", "size": 5},  # kept: stays
        {"src": b"top.txt", "dst": b"A/top.txt", "action": "move", "size": 1},
        {"src": b"lnk", "dst": b"A/lnk", "action": "move", "size": 9, "kind": "symlink"},
        {"src": b"proj", "dst": None, "action": "skip", "size": 100, "kind": "dir"},
        {"src": b"a0/x", "dst": None, "action": "skip", "size": None},
        {"src": b"a//x", "dst": b"lead//x", "action": "move", "size": 2},  # empty parts
    ]
    rows = [{"kind": "file", "size": 0, **row} for row in rows]

    for depth in (0, 1, 2, 5):
        found, expected = both([rows[:4], [], rows[4:]], depth)
        assert found == expected
        assert found[0].path == b"" and found[0].files == 7  # the symlink and folder left out


def test_a_plan_without_shards_or_files_is_an_empty_tree() -> None:
    assert both([], 2) == ([], [])
    assert both([[{"src": b"d", "action": "skip", "kind": "dir"}]], 2) == ([], [])
