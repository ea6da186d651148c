"""The work lists are written as DuckDB streams them (issue 14: a million files' list held
whole took 370-450 MB): the shards are cut exactly as tasks.pool.cut_ranges cuts the whole
list, whatever the batches DuckDB hands over, and an empty list is one empty shard."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from storage import manifests
from storage.locations import DataStore
from tasks import pool
from tasks.hashes import worklists
from tests.roots import TreeRoot
from tests.tasks.hashes.test_contract import write_tree
from tests.tasks.pipeline import hash_op, scan_op


def _work_list(rows: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    sizes = [rng.choice([0, 10, 4096, 70_000, 1_000_000]) for _ in range(rows)]
    cached = [None if rng.random() < 0.7 else b"d" * 32 for _ in range(rows)]
    return pa.table(
        {
            "dev": pa.array([1] * rows, pa.uint64()),
            "ino": pa.array(range(rows), pa.uint64()),
            "size": pa.array(sizes, pa.int64()),
            "mtime_ns": pa.array([0] * rows, pa.int64()),
            "path": pa.array([b"f%d" % i for i in range(rows)], pa.binary()),
            "cached": pa.array(cached, pa.binary()),
        }
    )


def _batches(table: pa.Table, seed: int) -> list[pa.RecordBatch]:
    rng, out, start = random.Random(seed), [], 0
    while start < table.num_rows:
        size = rng.choice([1, 3, 7, 50, 333])
        out.extend(table.slice(start, size).to_batches())
        start += size
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("shard_files", "shard_bytes"), [(7, None), (50, 2_000_000), (1, 1)])
def test_streamed_shards_are_cut_as_the_whole_list_is(
    tmp_path: Path, seed: int, shard_files: int, shard_bytes: int | None
) -> None:
    store = DataStore(str(tmp_path / "data"))
    table = _work_list(random.Random(seed).randint(0, 400), seed)
    to_read = [
        s if c is None else 0
        for s, c in zip(table["size"].to_pylist(), table["cached"].to_pylist(), strict=True)
    ]
    weights = to_read if shard_bytes is not None else [0] * table.num_rows
    expected = pool.cut_ranges(weights, shard_files, shard_bytes) or [(0, 0)]
    op_dir = str(tmp_path / "data" / "op")  # absolute: a relative one lands in the cwd
    shards = worklists._write_shards(
        store, op_dir, "prefix", _batches(table, seed), shard_files, shard_bytes
    )
    assert shards == len(expected)
    for index, (a, b) in enumerate(expected):
        path = manifests.shard_path(op_dir, worklists.inputs_dir("prefix"), index)
        written = manifests.read_table(store, path)
        assert written.schema == manifests.HASH_INPUT
        assert written.to_pylist() == table.slice(a, b - a).cast(manifests.HASH_INPUT).to_pylist()


def _inputs(store: DataStore, op_dir: str) -> dict[str, list[list[dict[str, object]]]]:
    return {
        name: [
            manifests.read_table(store, path).to_pylist()
            for path in manifests.shard_paths(store, op_dir, worklists.inputs_dir(name))
        ]
        for name in (worklists.PREFIX, worklists.FULL)
    }


def test_a_small_tree_lists_on_the_shared_database_and_cuts_the_same_shards(
    root: TreeRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below BOUNDED_FROM entries no database of its own is opened (15-120 ms each, most of a
    10-file run's hash stages); the shards are those the bounded database writes."""
    write_tree(root)
    opened: list[str] = []
    real_workspace = worklists.workspace

    def counted(store: DataStore) -> object:
        opened.append("workspace")
        return real_workspace(store)

    monkeypatch.setattr(worklists, "workspace", counted)
    written = {}
    for bounded_from in (worklists.BOUNDED_FROM, 0):
        monkeypatch.setattr(worklists, "BOUNDED_FROM", bounded_from)
        store = DataStore(str(tmp_path / f"data-{bounded_from}"))
        op_dir, counts = scan_op(store, root.url)
        assert 0 < counts["entries"] < worklists.BOUNDED_FROM or bounded_from == 0
        hash_op(store, op_dir, root.url, shard_rows=2)
        written[bounded_from] = _inputs(store, op_dir)
        assert len(opened) == (0 if bounded_from else 2)  # the situation under test happened
    assert written[0] == written[worklists.BOUNDED_FROM]
    assert len(written[0][worklists.PREFIX]) > 1  # more than one shard, cut alike
