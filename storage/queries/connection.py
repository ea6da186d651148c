"""The DuckDB side of every query: connections (cursors on one database per process, or a
database of its own for work that sets limits or makes tables; the data folder's fsspec
filesystem is registered on it when it is not local: DuckDB's httpfs extension is not bundled
with the wheel and cannot be downloaded on an offline install), a stage's shards as a FROM
clause, shards written before a column existed read with it as NULL, and a query's pages and
streams."""

from __future__ import annotations

import os
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
    """A connection for one query or a few: a cursor on this process's query database,
    closed after (what it registered and its temporary tables go with it). Whatever sets a
    global setting or makes tables for the others to see uses workspace() instead."""
    con = _cursor("queries", store)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def workspace(store: DataStore) -> Iterator[duckdb.DuckDBPyConnection]:
    """A database of its own, for work that sets its limits (memory_limit, temp_directory are
    global to a database) or makes tables (the planner): nobody else's query shares them."""
    con = duckdb.connect(config={"threads": 2})
    try:
        _prepare(con, store)
        yield con
    finally:
        con.close()


def _prepare(con: duckdb.DuckDBPyConnection, store: DataStore) -> None:
    if not store.is_local:
        con.register_filesystem(store.fs)
    _quiet(con)


def _quiet(con: duckdb.DuckDBPyConnection) -> None:
    # No progress bar (a setting of each connection): DuckDB draws one on the terminal for a
    # query over 2 s, which would tear through the CLI's output.
    con.execute("SET enable_progress_bar = false").fetchall()


# The process's databases: opening one costs 15-120 ms here (a 10-file organize asked for
# about 24), a cursor on one about 0.1 ms. "queries" is connect()'s: DuckDB's defaults but two
# threads, and no cache of files' bytes between queries (shards are renamed into place: a
# process that lives for days reads each query's files afresh, as it did with a database per
# query). "listings" is shared()'s, with the listing manifests' footers kept. Keyed by the pid:
# a forked child never uses its parent's database, whose DuckDB threads it does not have; the
# one it inherited stays referenced, never closed (closing it would wait for those threads).
# Keyed by the filesystem object too: a database keeps the one registered on it (so its id
# is not reused while the database lives).
SHARED_MEMORY = "512MB"
_CONFIGS: dict[str, dict[str, Any]] = {
    "queries": {"threads": 2, "enable_external_file_cache": False},
    "listings": {"threads": 2, "memory_limit": SHARED_MEMORY},
}
_SETTINGS = {"queries": (), "listings": ("SET parquet_metadata_cache = true",)}
_databases: dict[tuple[int, str, int], duckdb.DuckDBPyConnection] = {}
_databases_lock = threading.Lock()
_per_thread = threading.local()


def _reset_after_fork() -> None:
    global _databases_lock, _per_thread
    _databases_lock = threading.Lock()  # a thread of the parent may have held it at the fork
    _per_thread = threading.local()


os.register_at_fork(after_in_child=_reset_after_fork)


def _key(kind: str, store: DataStore) -> tuple[int, str, int]:
    # A local store registers nothing: every data folder shares the database.
    return (os.getpid(), kind, 0 if store.is_local else id(store.fs))


def _cursor(kind: str, store: DataStore) -> duckdb.DuckDBPyConnection:
    """A new connection to this process's `kind` database for `store` (opened the first time)."""
    key = _key(kind, store)
    with _databases_lock:
        base = _databases.get(key)
        if base is None:
            base = _databases[key] = duckdb.connect(config=_CONFIGS[kind])
            for setting in _SETTINGS[kind]:
                base.execute(setting).fetchall()
            _prepare(base, store)
        con = base.cursor()
    _quiet(con)
    return con


def shared(store: DataStore) -> duckdb.DuckDBPyConnection:
    """This thread's connection to the process's listing database for `store`. Opened once and
    reused, so a page pays neither a connect nor the filesystem's registration, and DuckDB keeps
    the Parquet footers it read (the listing manifest's files never change once written)."""
    key = _key("listings", store)
    mine: dict[tuple[int, str, int], duckdb.DuckDBPyConnection] = _per_thread.__dict__.setdefault(
        "cons", {}
    )
    con = mine.get(key)
    if con is None:
        con = mine[key] = _cursor("listings", store)
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
SCAN_ADDED = {"left_alone": "VARCHAR", "rule": "VARCHAR", "uid": "BIGINT", "gid": "BIGINT"}


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
    with workspace(store) as con, tempfile.TemporaryDirectory(prefix="fileorg-sort-") as spill:
        con.execute(f"SET memory_limit = '{STREAM_MEMORY}'")
        con.execute("SET temp_directory = $dir", {"dir": spill})
        query.register(con)
        relation = con.sql(query.ordered(limit, offset), params=query.params)
        for batch in relation.to_arrow_reader(STREAM_ROWS):
            yield batch.to_pylist()
