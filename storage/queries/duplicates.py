"""Duplicates and the report's figures: groups of equal content (hard links are one copy),
totals per category and year, and the entries a stage could not read."""

from __future__ import annotations

from typing import Any

from storage import manifests
from storage.locations import DataStore
from storage.queries.connection import (
    PLAN_ADDED,
    SCAN_ADDED,
    Query,
    connect,
    has_shards,
    source,
    with_columns,
)

EMPTY_DIGEST_HEX = manifests.EMPTY_DIGEST.hex()  # how the SQL spells it


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


def in_subfolders(store: DataStore, op_dir: str, include_empty: bool = False) -> int:
    """Files of duplicate groups that the plan keeps inside subfolders (--keep-subfolders):
    no policy touches them, so a summary says how many there are."""
    if not has_shards(store, op_dir, "plan"):
        return 0
    sql = f"""
        WITH h AS ({_hash_with_empty(store, op_dir, include_empty)}),
        g AS (SELECT size, digest FROM h GROUP BY size, digest HAVING count(*) > 1)
        SELECT count(*) FROM {with_columns(store, op_dir, "plan", PLAN_ADDED)} p
        SEMI JOIN g ON g.size = p.size AND g.digest = p.digest
        WHERE p.reason_code = 'subfolder'
    """
    with connect(store) as con:
        (count,) = con.execute(sql).fetchone() or (0,)
    return int(count)


def totals_by_category_year(store: DataStore, op_dir: str) -> list[dict[str, Any]]:
    """Files to organize (not those the scan left alone) by category and year."""
    sql = f"""
        SELECT coalesce(c.category, 'other') AS category, c.year, count(*) AS files,
               sum(s.size) AS bytes
        FROM {with_columns(store, op_dir, "scan", SCAN_ADDED)} s
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
