"""The work lists are written as DuckDB streams them (issue 14: a million files' list held
whole took 370-450 MB): the shards are cut exactly as tasks.pool.cut_ranges cuts the whole
list, whatever the batches DuckDB hands over, and an empty list is one empty shard."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pyarrow as pa
import pytest

from storage import manifests
from storage.locations import DataStore
from tasks import pool
from tasks.backends import backend_for
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


def _long_named_files(store: DataStore, op_dir: str, files: int) -> None:
    """Scan and classify shards of `files` files of 300-byte names, every size shared by three
    (all of them in the list) and each with classify's prefix (the list's join to it)."""
    shard = 50_000
    for index, start in enumerate(range(0, files, shard)):
        rows = range(start, min(files, start + shard))
        paths = pa.array([b"/r/%s/file-%09d" % (b"x" * 300, i) for i in rows], pa.binary())
        scan = {field.name: pa.nulls(len(rows), field.type) for field in manifests.SCAN}
        scan.update(
            path=paths,
            kind=pa.array(["file"] * len(rows)),
            size=pa.array([5000 + i % (files // 3) for i in rows], pa.int64()),
            mtime_ns=pa.array(rows, pa.int64()),
            dev=pa.array([1] * len(rows), pa.uint64()),
            ino=pa.array([i * 7919 % (1 << 40) for i in rows], pa.uint64()),  # not in order
        )
        classify = {field.name: pa.nulls(len(rows), field.type) for field in manifests.CLASSIFY}
        classify.update(path=paths, prefix=pa.array([b"p" * 32] * len(rows), pa.binary()))
        for stage, columns, schema in [
            ("scan", scan, manifests.SCAN),
            ("classify", classify, manifests.CLASSIFY),
        ]:
            path = manifests.shard_path(op_dir, stage, index)
            manifests.write_table(store, path, pa.table(columns, schema=schema))
    manifests.mark_done(store, op_dir, "scan", {"entries": files, "shards": index + 1})
    manifests.mark_done(store, op_dir, "classify", {"shards": index + 1})


def test_a_bounded_prefix_list_is_made_within_its_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """415d361: on a database of its own the list is a table first, then sorted from it. One
    statement that joined, grouped and sorted held its joins' tables and the CTE pinned while
    it sorted: at a million files it outgrew WORKLIST_MEMORY now and then and ran again
    without the limit. The same here at a small scale: 100,000 files under 64 MB fell back
    every run as one statement (4 of 4; it fits from about 96 MB), and fit from about 48 MB
    as a table."""
    store = DataStore(str(tmp_path / "data"))
    op_dir = str(tmp_path / "data" / "op")
    _long_named_files(store, op_dir, 100_000)
    monkeypatch.setattr(worklists, "WORKLIST_MEMORY", "64MB")
    monkeypatch.setattr(worklists, "BOUNDED_FROM", 1)  # a database of its own, limited
    with caplog.at_level(logging.WARNING, logger=worklists.log.name):
        shards = worklists.plan_prefix_inputs(store, op_dir, None, 10_000, backend_for("/r"))

    assert [r.getMessage() for r in caplog.records] == []  # no run again without the limit
    written = [
        manifests.read_table(store, path).select(["dev", "ino"])
        for path in manifests.shard_paths(store, op_dir, worklists.inputs_dir(worklists.PREFIX))
    ]
    assert shards == len(written) == 10
    keys = [(row["dev"], row["ino"]) for table in written for row in table.to_pylist()]
    assert len(keys) == 100_000 and keys == sorted(keys)
