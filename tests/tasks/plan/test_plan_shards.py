"""The plan's shards: every row once, in path order, `shard_rows` a shard, also when one sort
of the whole plan does not fit in the planner's memory limit (a million files did not)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from storage import manifests
from storage.locations import DataStore
from tasks.plan import stage

# Rows shaped like a real plan's: long paths (blobs) and every text column filled.
_ROWS = """
    CREATE TABLE rows AS SELECT
        encode('/home/user/Downloads/a folder/' || (i * 7919 % {n})::VARCHAR
               || '/file name ' || i::VARCHAR || '.jpg') AS src,
        encode('/home/user/Downloads/Images/2019/file name ' || i::VARCHAR || '.jpg') AS dst,
        'move' AS action, 'organized by category and year' AS reason, i::BIGINT AS size,
        i::BIGINT AS mtime_ns, 1::UBIGINT AS dev, i::UBIGINT AS ino, 'images' AS category,
        2019 AS year, NULL::BLOB AS digest, NULL::BLOB AS link_to, 'organized' AS reason_code,
        'file' AS kind, NULL::BLOB AS unit, NULL::BLOB AS twin, 'mtime' AS date_source
    FROM range({n}) r(i)
"""


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    spill = tmp_path / "spill"
    spill.mkdir()
    connection = duckdb.connect(config={"threads": 2, "temp_directory": str(spill)})
    connection.execute("SET preserve_insertion_order = false")
    yield connection
    connection.close()


def _plan_rows(con: duckdb.DuckDBPyConnection, n: int) -> None:
    con.execute(_ROWS.format(n=n))
    con.execute("CREATE TABLE plan_out AS SELECT * FROM rows")


def _shards(store: DataStore, op_dir: str) -> list[pa.Table]:
    return [
        manifests.read_table(store, path)
        for path in manifests.shard_paths(store, op_dir, stage.STAGE)
    ]


def _check(con: duckdb.DuckDBPyConnection, tables: list[pa.Table], shard_rows: int) -> None:
    """Every row of plan_rows once, in path order, cut at every `shard_rows` rows."""
    everything = pa.concat_tables(tables)
    expected = con.sql("SELECT src FROM rows ORDER BY src").to_arrow_table()["src"]
    assert everything["src"].equals(expected)
    assert [t.num_rows for t in tables[:-1]] == [shard_rows] * (len(tables) - 1)
    assert 0 < tables[-1].num_rows <= shard_rows
    assert all(t.schema.equals(manifests.PLAN) for t in tables)


def test_both_ways_of_sorting_write_the_same_shards(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _plan_rows(con, 2_500)
    store = DataStore(str(tmp_path))
    whole = stage._write_sorted(con, store, f"{tmp_path}/whole", 1_000)
    by_range = stage._write_sorted_by_range(con, store, f"{tmp_path}/ranges", 1_000)
    assert whole == by_range == 3
    first, second = _shards(store, f"{tmp_path}/whole"), _shards(store, f"{tmp_path}/ranges")
    _check(con, first, 1_000)
    assert all(a.equals(b) for a, b in zip(first, second, strict=True))


def test_a_plan_too_wide_to_sort_at_once_is_written_a_shard_at_a_time(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _plan_rows(con, 300_000)
    con.execute("SET memory_limit = '64MB'")
    # The situation: under this limit one sort of every whole row fails, as it did at a
    # million files under PLAN_MEMORY.
    with pytest.raises(duckdb.OutOfMemoryException):
        con.sql("SELECT * FROM rows ORDER BY src").to_arrow_reader(100_000).read_all()
    store = DataStore(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger=stage.log.name):
        shards = stage._write_shards(con, store, f"{tmp_path}/op", 100_000)
    assert "one shard at a time" in caplog.text
    assert shards == 3
    _check(con, _shards(store, f"{tmp_path}/op"), 100_000)


def test_no_entry_is_one_empty_shard(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _plan_rows(con, 0)
    store = DataStore(str(tmp_path))
    assert stage._write_shards(con, store, f"{tmp_path}/op", 10) == 1
    assert stage._write_sorted_by_range(con, store, f"{tmp_path}/ranges", 10) == 1
    for op_dir in (f"{tmp_path}/op", f"{tmp_path}/ranges"):
        (table,) = _shards(store, op_dir)
        assert table.num_rows == 0 and table.schema.equals(manifests.PLAN)


def test_only_the_plan_is_kept_for_its_sort(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_ROWS.format(n=10))
    con.execute("CREATE TABLE facts AS SELECT src AS path FROM rows")
    con.execute("CREATE VIEW plan_rows AS SELECT * FROM rows WHERE size < 4")
    stage._keep_only_the_plan(con)
    tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    views = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    assert tables == [("plan_out",)] and views == []
    assert con.execute("SELECT count(*) FROM plan_out").fetchall() == [(4,)]
