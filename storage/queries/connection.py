"""The DuckDB side of every query: a connection (the data folder's fsspec filesystem is
registered on it when it is not local: DuckDB's httpfs extension is not bundled with the wheel
and cannot be downloaded on an offline install), a stage's shards as a FROM clause, shards
written before a column existed read with it as NULL, and a query's pages and streams."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from storage import manifests
from storage.locations import DataStore

# Rows a streamed query hands over at a time, and DuckDB's memory while it streams (a sort
# past it spills to a temporary file instead of growing).
STREAM_ROWS = 2_000
STREAM_MEMORY = "128MB"


@dataclass(frozen=True)
class Query:
    """A SELECT without its ORDER BY, the order that makes its pages stable, its parameters."""

    sql: str
    order: str
    params: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pa.Table] = field(default_factory=dict)  # Arrow tables the SQL names

    def ordered(self, limit: int | None, offset: int) -> str:
        return f"{self.sql} ORDER BY {self.order} {_page(limit, offset)}"

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        for name, table in self.tables.items():
            con.register(name, table)


@contextmanager
def connect(store: DataStore) -> Iterator[duckdb.DuckDBPyConnection]:
    # No progress bar: DuckDB draws one on the terminal for a query over 2 s, which would tear
    # through the CLI's output.
    con = duckdb.connect(config={"threads": 2})
    try:
        con.execute("SET enable_progress_bar = false")
        if not store.is_local:
            con.register_filesystem(store.fs)
        yield con
    finally:
        con.close()


# The listings' database: one per data folder and process, one connection to it per thread
# (a DuckDB connection is not shared between threads; its cursors share the database).
SHARED_MEMORY = "512MB"
_databases: dict[tuple[str, int], duckdb.DuckDBPyConnection] = {}
_databases_lock = threading.Lock()
_per_thread = threading.local()


def shared(store: DataStore) -> duckdb.DuckDBPyConnection:
    """This thread's connection to the process's listing database for `store`. Opened once and
    reused, so a page pays neither a connect nor the filesystem's registration, and DuckDB keeps
    the Parquet footers it read (the listing manifest's files never change once written)."""
    # By the filesystem object too: the database keeps the one registered on it.
    key = (store.url, id(store.fs))
    mine: dict[tuple[str, int], duckdb.DuckDBPyConnection] = _per_thread.__dict__.setdefault(
        "cons", {}
    )
    con = mine.get(key)
    if con is None:
        with _databases_lock:
            base = _databases.get(key)
            if base is None:
                base = duckdb.connect(config={"threads": 2, "memory_limit": SHARED_MEMORY})
                base.execute("SET parquet_metadata_cache = true").fetchall()
                if not store.is_local:
                    base.register_filesystem(store.fs)
                _databases[key] = base
            con = mine[key] = base.cursor()
        con.execute("SET enable_progress_bar = false").fetchall()
    return con


def stage_glob(store: DataStore, op_dir: str, stage: str) -> str:
    return store.duckdb_path(f"{op_dir}/{stage}/part-*.parquet")


def has_shards(store: DataStore, op_dir: str, stage: str) -> bool:
    return bool(manifests.shard_paths(store, op_dir, stage))


def source(store: DataStore, op_dir: str, stage: str) -> str:
    """A FROM clause for one stage's shards, quoted for SQL. Columns are matched by name: an
    operation resumed across an upgrade holds shards written before a column existed beside
    shards written after, and the older ones read NULL there (by position, DuckDB would take
    the first shard's columns for all and refuse the rest)."""
    pattern = stage_glob(store, op_dir, stage).replace("'", "''")
    return f"read_parquet('{pattern}', union_by_name = true)"


def _page(limit: int | None, offset: int) -> str:
    if limit is None:
        return f"OFFSET {int(offset)}"
    return f"LIMIT {int(limit)} OFFSET {int(offset)}"


# Columns later plans carry that older ones lack: those read as NULL (storage.manifests.PLAN).
PLAN_ADDED = {
    "reason_code": "VARCHAR",
    "kind": "VARCHAR",
    "unit": "BLOB",
    "twin": "BLOB",
    "date_source": "VARCHAR",
}
SCAN_ADDED = {"left_alone": "VARCHAR", "rule": "VARCHAR"}


def columns(store: DataStore, table: str) -> set[str]:
    with connect(store) as con:
        return {str(r[0]) for r in con.sql(f"DESCRIBE SELECT * FROM {table}").fetchall()}


def with_columns(store: DataStore, op_dir: str, stage: str, added: dict[str, str]) -> str:
    """A FROM clause for a stage's shards with every column of today's schema: shards written
    before a column existed read it as NULL."""
    table = source(store, op_dir, stage)
    present = columns(store, table)
    missing = [f"NULL::{kind} AS {name}" for name, kind in added.items() if name not in present]
    return f"(SELECT *, {', '.join(missing)} FROM {table})" if missing else table


def page(
    store: DataStore, query: Query, limit: int | None, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the query in its stable order, and the number of rows of the whole result."""
    with connect(store) as con:
        query.register(con)
        rows: list[dict[str, Any]] = (
            con.sql(query.ordered(limit, offset), params=query.params).to_arrow_table().to_pylist()
        )
        counted = con.execute(f"SELECT count(*) FROM ({query.sql})", query.params).fetchone()
    return rows, int(counted[0]) if counted else 0


def stream(
    store: DataStore, query: Query, offset: int = 0, limit: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every row of the query (from `offset`) in its stable order, STREAM_ROWS at a time.

    DuckDB hands the result over batch by batch (its sort spills to disk past its memory
    limit), so a caller that writes each batch out holds one batch, however many rows there are.
    """
    with connect(store) as con, tempfile.TemporaryDirectory(prefix="fileorg-sort-") as spill:
        con.execute(f"SET memory_limit = '{STREAM_MEMORY}'")
        con.execute("SET temp_directory = $dir", {"dir": spill})
        query.register(con)
        relation = con.sql(query.ordered(limit, offset), params=query.params)
        for batch in relation.to_arrow_reader(STREAM_ROWS):
            yield batch.to_pylist()
