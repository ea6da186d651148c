"""DuckDB over an operation's Parquet shards: every question about an operation is answered here.

For object stores the fsspec filesystem is registered on the connection: DuckDB's httpfs
extension is not bundled with the wheel and cannot be downloaded on an offline install.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from storage import manifests, outcomes
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


# Columns later plans carry that older ones lack: those read as NULL (storage.manifests.PLAN).
_PLAN_ADDED = {
    "reason_code": "VARCHAR",
    "kind": "VARCHAR",
    "unit": "BLOB",
    "twin": "BLOB",
    "date_source": "VARCHAR",
}
_SCAN_ADDED = {"left_alone": "VARCHAR", "rule": "VARCHAR"}


def _columns(store: DataStore, table: str) -> set[str]:
    with connect(store) as con:
        return {str(r[0]) for r in con.sql(f"DESCRIBE SELECT * FROM {table}").fetchall()}


def _with_columns(store: DataStore, op_dir: str, stage: str, added: dict[str, str]) -> str:
    """A FROM clause for a stage's shards with every column of today's schema: shards written
    before a column existed read it as NULL."""
    table = source(store, op_dir, stage)
    present = _columns(store, table)
    missing = [f"NULL::{kind} AS {name}" for name, kind in added.items() if name not in present]
    return f"(SELECT *, {', '.join(missing)} FROM {table})" if missing else table


def plan_source(store: DataStore, op_dir: str) -> str:
    return _with_columns(store, op_dir, "plan", _PLAN_ADDED)


def _codes(reason_code: str | Sequence[str] | None) -> list[str]:
    if reason_code is None:
        return []
    return [reason_code] if isinstance(reason_code, str) else list(reason_code)


PLAN_ACTIONS = ("move", "keep", "skip", "quarantine", "hardlink")


def plan_items(store: DataStore, op_dir: str) -> str:
    """The plan's rows, each with `seq`, the key apply journals it under (storage.journal.
    item_seq: hard links in the phase `link`, the rest in `move`; shard; row in the shard)."""
    pattern = stage_glob(store, op_dir, "plan").replace("'", "''")
    # Plans written before a column existed read it as NULL (_PLAN_ADDED).
    present = _columns(store, source(store, op_dir, "plan"))
    missing = "".join(
        f", NULL::{kind} AS {name}" for name, kind in _PLAN_ADDED.items() if name not in present
    )
    return f"""(
        SELECT *{missing}, (CASE WHEN action = 'hardlink' THEN 'link' ELSE 'move' END) || '-'
               || CAST(CAST(regexp_extract(filename, 'part-([0-9]+)[.]parquet$', 1) AS INTEGER)
                       AS VARCHAR)
               || '-' || CAST(file_row_number AS VARCHAR) AS seq
        FROM read_parquet('{pattern}', filename = true, file_row_number = true)
    )"""


def plan_query(
    store: DataStore,
    op_dir: str,
    action: str | None = None,
    outcome: str | None = None,
    reason_code: str | Sequence[str] | None = None,
) -> Query:
    """Plan rows with what apply and rollback made of each (storage.outcomes), filtered by
    action, by outcome (an apply outcome, or a rollback one: `restored`, `refused`) and by
    reason code(s) (storage.manifests.REASON_CODES), each when given."""
    filters: list[str] = []
    params: dict[str, Any] = {}
    if action:
        filters.append("p.action = $action")
        params["action"] = action
    if outcome:
        filters.append("(o.apply_outcome = $outcome OR o.rollback_outcome = $outcome)")
        params["outcome"] = outcome
    if codes := _codes(reason_code):
        filters.append("list_contains($codes, p.reason_code)")
        params["codes"] = codes
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    sql = f"""
        SELECT p.src, p.dst, p.action, p.reason, p.reason_code, p.size, p.category, p.year,
               p.link_to, p.kind, p.unit, p.twin, p.date_source,
               o.apply_outcome, o.rollback_outcome,
               coalesce(o.rollback_reason, o.apply_reason) AS outcome_reason
        FROM {plan_items(store, op_dir)} p
        LEFT JOIN outcomes o ON o.seq = p.seq
        {where}
    """
    return Query(sql, "p.src", params, {"outcomes": outcomes.outcome_table(store, op_dir)})


def plan_rows(
    store: DataStore,
    op_dir: str,
    action: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
    outcome: str | None = None,
    reason_code: str | Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    query = plan_query(store, op_dir, action, outcome, reason_code)
    return page(store, query, limit, offset)


def outcome_sample(
    store: DataStore, op_dir: str, kinds: tuple[str, ...], limit: int = 5
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The first `limit` plan rows whose apply or rollback outcome is one of `kinds`, and how
    many rows have each of them: what an apply or rollback shows of what it could not do."""
    table = outcomes.outcome_table(store, op_dir)
    picked = (
        "CASE WHEN list_contains($kinds, o.rollback_outcome) THEN o.rollback_outcome "
        "ELSE o.apply_outcome END"
    )
    sql = f"""
        SELECT p.src, p.dst, p.action, o.apply_outcome, o.rollback_outcome,
               coalesce(o.rollback_reason, o.apply_reason) AS outcome_reason, {picked} AS outcome
        FROM {plan_items(store, op_dir)} p JOIN outcomes o ON o.seq = p.seq
        WHERE list_contains($kinds, o.apply_outcome) OR list_contains($kinds, o.rollback_outcome)
    """
    params = {"kinds": list(kinds)}
    with connect(store) as con:
        con.register("outcomes", table)
        rows: list[dict[str, Any]] = (
            con.sql(f"{sql} ORDER BY p.src LIMIT {int(limit)}", params=params)
            .to_arrow_table()
            .to_pylist()
        )
        counted = con.execute(
            f"SELECT outcome, count(*) FROM ({sql}) GROUP BY outcome", params
        ).fetchall()
    found = dict(counted)
    return rows, {k: int(found[k]) for k in kinds if found.get(k)}


def reason_counts(store: DataStore, op_dir: str) -> list[dict[str, Any]]:
    """Entries and bytes per (reason code, action): what the summary's lines add up."""
    sql = f"""
        SELECT reason_code, action, count(*) AS entries, coalesce(sum(size), 0)::BIGINT AS bytes
        FROM {plan_source(store, op_dir)} GROUP BY ALL ORDER BY reason_code, action
    """
    with connect(store) as con:
        rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows


def left_alone_query(
    store: DataStore, op_dir: str, reason_code: str | Sequence[str] | None = None
) -> Query:
    """What the plan leaves alone by a rule (manifests.LEFT_ALONE_CODES), one row per unit:
    a folder left whole, or an entry on its own. `files` and `bytes` count the files the scan
    listed in it; a folder the scan never entered has them null (not counted, on purpose)."""
    codes = _codes(reason_code) or list(manifests.LEFT_ALONE_CODES)
    whole = "bool_or(kind = 'dir' AND src = coalesce(unit, src))"
    sql = f"""
        SELECT coalesce(unit, src) AS path, reason_code,
               arg_min(reason, length(reason)) AS reason,
               CASE WHEN {whole} THEN NULL ELSE count(*) END AS files,
               CASE WHEN {whole} THEN NULL ELSE sum(size)::BIGINT END AS bytes,
               NOT {whole} AS entered
        FROM {plan_source(store, op_dir)}
        WHERE list_contains($codes, reason_code)
        GROUP BY ALL
    """
    return Query(sql, "path", {"codes": codes})


def left_alone(
    store: DataStore,
    op_dir: str,
    reason_code: str | Sequence[str] | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    rows, total = page(store, left_alone_query(store, op_dir, reason_code), limit, offset)
    return [unit_row(row) for row in rows], total


def unit_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of left_alone_query for people: the reason without "inside <its own path>", and
    the path as text."""
    inside = f": inside {os.fsdecode(row['path'])}"
    return {
        **row,
        "reason": str(row["reason"]).removesuffix(inside),
        "path_text": row["path"].decode("utf-8", "backslashreplace"),
    }


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
    """Files to organize (not those the scan left alone) by category and year."""
    sql = f"""
        SELECT coalesce(c.category, 'other') AS category, c.year, count(*) AS files,
               sum(s.size) AS bytes
        FROM {_with_columns(store, op_dir, "scan", _SCAN_ADDED)} s
        LEFT JOIN {source(store, op_dir, "classify")} c ON c.path = s.path
        WHERE s.kind = 'file' AND s.left_alone IS NULL
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
