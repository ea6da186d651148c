"""DuckDB over an operation's Parquet shards: every question about an operation is answered here.

For object stores the fsspec filesystem is registered on the connection: DuckDB's httpfs
extension is not bundled with the wheel and cannot be downloaded on an offline install.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb

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

    def ordered(self, limit: int | None, offset: int) -> str:
        return f"{self.sql} ORDER BY {self.order} {_page(limit, offset)}"


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


def stage_glob(store: DataStore, op_dir: str, stage: str) -> str:
    return store.duckdb_path(f"{op_dir}/{stage}/part-*.parquet")


def has_shards(store: DataStore, op_dir: str, stage: str) -> bool:
    return bool(manifests.shard_paths(store, op_dir, stage))


def source(store: DataStore, op_dir: str, stage: str) -> str:
    """A FROM clause for one stage's shards, quoted for SQL."""
    pattern = stage_glob(store, op_dir, stage).replace("'", "''")
    return f"read_parquet('{pattern}')"


# blake3 of no bytes: the digest every empty file has.
EMPTY_DIGEST_HEX = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def _hash_with_empty(store: DataStore, op_dir: str, include_empty: bool) -> str:
    """Content digests per inode; empty files share one digest when they count as duplicates."""
    hashed = (
        f"SELECT dev, ino, size, digest FROM {source(store, op_dir, 'hash')} WHERE error IS NULL"
    )
    if not include_empty:
        return hashed
    empty = f"""
        SELECT DISTINCT dev, ino, 0 AS size, unhex('{EMPTY_DIGEST_HEX}') AS digest
        FROM {source(store, op_dir, "scan")} WHERE kind = 'file' AND size = 0
    """
    return f"{hashed} UNION ALL {empty}"


def duplicate_query(store: DataStore, op_dir: str, include_empty: bool = False) -> Query:
    """Groups of files with equal content, largest waste first; hard links are one copy."""
    sql = f"""
        WITH h AS ({_hash_with_empty(store, op_dir, include_empty)}),
        g AS (
            SELECT size, digest, count(*) AS copies FROM h
            GROUP BY size, digest HAVING count(*) > 1
        ),
        members AS (
            SELECT g.size, g.digest, g.copies, s.path, s.path_text, s.dev, s.ino
            FROM g JOIN h USING (size, digest)
            JOIN {source(store, op_dir, "scan")} s
              ON s.dev = h.dev AND s.ino = h.ino AND s.kind = 'file'
        )
        SELECT hex(digest) AS digest, size, copies, size * (copies - 1) AS wasted_bytes,
               list(path ORDER BY path) AS paths, list(path_text ORDER BY path) AS paths_text
        FROM members GROUP BY size, digest, copies
    """
    return Query(sql, "wasted_bytes DESC, digest", {})


def duplicate_groups(
    store: DataStore,
    op_dir: str,
    include_empty: bool = False,
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    query = duplicate_query(store, op_dir, include_empty)
    with connect(store) as con:
        rows: list[dict[str, Any]] = (
            con.sql(query.ordered(limit, offset)).to_arrow_table().to_pylist()
        )
    return rows, duplicate_summary(store, op_dir, include_empty)["groups"]


def duplicate_summary(store: DataStore, op_dir: str, include_empty: bool = False) -> dict[str, int]:
    sql = f"""
        WITH h AS ({_hash_with_empty(store, op_dir, include_empty)}),
        g AS (SELECT size, count(*) AS copies FROM h GROUP BY size, digest HAVING count(*) > 1)
        SELECT count(*), coalesce(sum(copies), 0), coalesce(sum(size * (copies - 1)), 0) FROM g
    """
    with connect(store) as con:
        groups, files, wasted = con.execute(sql).fetchone() or (0, 0, 0)
    return {"groups": int(groups), "files": int(files), "wasted_bytes": int(wasted)}


def _page(limit: int | None, offset: int) -> str:
    if limit is None:
        return f"OFFSET {int(offset)}"
    return f"LIMIT {int(limit)} OFFSET {int(offset)}"


def plan_query(store: DataStore, op_dir: str, action: str | None = None) -> Query:
    where = "WHERE action = $action" if action else ""
    sql = f"""
        SELECT src, dst, action, reason, size, category, year, link_to
        FROM {source(store, op_dir, "plan")} {where}
    """
    return Query(sql, "src", {"action": action} if action else {})


def plan_rows(
    store: DataStore,
    op_dir: str,
    action: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    return page(store, plan_query(store, op_dir, action), limit, offset)


def page(
    store: DataStore, query: Query, limit: int | None, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the query in its stable order, and the number of rows of the whole result."""
    with connect(store) as con:
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
        relation = con.sql(query.ordered(limit, offset), params=query.params)
        for batch in relation.to_arrow_reader(STREAM_ROWS):
            yield batch.to_pylist()


# Sort keys: columns of the file listing.
FILE_SORTS = {"path": "path", "size": "size", "date": "date", "name": "path_text"}


def file_rows(
    store: DataStore,
    op_dir: str,
    category: str | None = None,
    year: int | None = None,
    ext: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    name: str | None = None,
    sort: str = "path",
    descending: bool = False,
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    query = file_query(
        store, op_dir, category, year, ext, min_size, max_size, name, sort, descending
    )
    return page(store, query, limit, offset)


def file_query(
    store: DataStore,
    op_dir: str,
    category: str | None = None,
    year: int | None = None,
    ext: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    name: str | None = None,
    sort: str = "path",
    descending: bool = False,
) -> Query:
    filters = ["s.kind = 'file'"]
    params: dict[str, Any] = {}
    for column, value, op in (
        ("c.category", category.lower() if category else None, "="),
        ("c.year", year, "="),
        ("c.ext", ext.lower().lstrip(".") if ext else None, "="),
        ("s.size", min_size, ">="),
        ("s.size", max_size, "<="),
    ):
        if value is not None:
            param = f"p{len(params)}"
            filters.append(f"{column} {op} ${param}")
            params[param] = value
    if name:
        filters.append("contains(lower(s.path_text), lower($name))")
        params["name"] = name
    order = FILE_SORTS.get(sort)
    if order is None:
        raise ValueError(f"unknown sort {sort!r}: use {', '.join(FILE_SORTS)}")
    sql = f"""
        SELECT s.path, s.path_text, s.size, s.mtime_ns, c.category, c.ext, c.date, c.date_source,
               c.year
        FROM {source(store, op_dir, "scan")} s
        LEFT JOIN {source(store, op_dir, "classify")} c ON c.path = s.path
        WHERE {" AND ".join(filters)}
    """
    direction = "DESC" if descending else "ASC"
    return Query(sql, f"{order} {direction} NULLS LAST, path", params)


def totals_by_category_year(store: DataStore, op_dir: str) -> list[dict[str, Any]]:
    sql = f"""
        SELECT coalesce(c.category, 'other') AS category, c.year, count(*) AS files,
               sum(s.size) AS bytes
        FROM {source(store, op_dir, "scan")} s
        LEFT JOIN {source(store, op_dir, "classify")} c ON c.path = s.path
        WHERE s.kind = 'file'
        GROUP BY ALL ORDER BY category, year NULLS LAST
    """
    with connect(store) as con:
        rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows


def problems(store: DataStore, op_dir: str, limit: int = 100) -> list[dict[str, Any]]:
    """Entries that could not be read at some stage: reported, never fatal."""
    sql = f"""
        SELECT path, 'scan' AS stage, error FROM {source(store, op_dir, "scan")}
        WHERE error IS NOT NULL
        UNION ALL
        SELECT s.path, 'hash', h.error FROM {source(store, op_dir, "hash")} h
        JOIN {source(store, op_dir, "scan")} s ON s.dev = h.dev AND s.ino = h.ino
        WHERE h.error IS NOT NULL
        UNION ALL
        SELECT s.path, 'prefix', h.error FROM {source(store, op_dir, "prefix")} h
        JOIN {source(store, op_dir, "scan")} s ON s.dev = h.dev AND s.ino = h.ino
        WHERE h.error IS NOT NULL
        UNION ALL
        SELECT s.path, 'classify', c.error FROM {source(store, op_dir, "classify")} c
        JOIN {source(store, op_dir, "scan")} s ON s.path = c.path
        WHERE c.error IS NOT NULL
        ORDER BY 1 LIMIT {int(limit)}
    """
    with connect(store) as con:
        rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows
