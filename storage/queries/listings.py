"""Listings of an operation, page by page or streamed: the plan (with what became of each
row), reason counts, what was left alone, and the file listing with its filters and sorts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage import manifests, outcomes
from storage.locations import DataStore
from storage.queries.connection import (
    PLAN_ADDED,
    Query,
    columns,
    connect,
    page,
    source,
    stage_glob,
    with_columns,
)
from storage.vocabulary import PLAN_ACTIONS as PLAN_ACTIONS  # the names the CLI checks


def plan_source(store: DataStore, op_dir: str) -> str:
    return with_columns(store, op_dir, "plan", PLAN_ADDED)


def codes_of(reason_code: str | Sequence[str] | None) -> list[str]:
    if reason_code is None:
        return []
    return [reason_code] if isinstance(reason_code, str) else list(reason_code)


def plan_items(store: DataStore, op_dir: str) -> str:
    """The plan's rows, each with `seq`, the key apply journals it under (storage.journal.
    item_seq: hard links in the phase `link`, the rest in `move`; shard; row in the shard)."""
    pattern = stage_glob(store, op_dir, "plan").replace("'", "''")
    # Plans written before a column existed read it as NULL (PLAN_ADDED).
    present = columns(store, source(store, op_dir, "plan"))
    missing = "".join(
        f", NULL::{kind} AS {name}" for name, kind in PLAN_ADDED.items() if name not in present
    )
    return f"""(
        SELECT *{missing}, (CASE WHEN action = 'hardlink' THEN 'link' ELSE 'move' END) || '-'
               || CAST(CAST(regexp_extract(filename, 'part-([0-9]+)[.]parquet$', 1) AS INTEGER)
                       AS VARCHAR)
               || '-' || CAST(file_row_number AS VARCHAR) AS seq
        FROM read_parquet('{pattern}', filename = true, file_row_number = true)
    )"""


# The byte-path columns of plan_query's rows, which each reader turns into text its own way
# (the CLI's JSON: os.fsdecode; the API: api.manifests.text).
PLAN_PATHS = ("src", "dst", "link_to", "unit", "twin")


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
    table = outcomes.outcome_table(store, op_dir)
    applied, why = outcomes.plan_outcomes("p", outcomes.was_applied(store, op_dir, table))
    filters: list[str] = []
    params: dict[str, Any] = {}
    if action:
        filters.append("p.action = $action")
        params["action"] = action
    if outcome:
        filters.append(f"({applied} = $outcome OR o.rollback_outcome = $outcome)")
        params["outcome"] = outcome
    if codes := codes_of(reason_code):
        filters.append("list_contains($codes, p.reason_code)")
        params["codes"] = codes
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    sql = f"""
        SELECT p.src, p.dst, p.action, p.reason, p.reason_code, p.size, p.category, p.year,
               p.link_to, p.kind, p.unit, p.twin, p.date_source,
               {applied} AS apply_outcome, o.rollback_outcome, {why} AS outcome_reason
        FROM {plan_items(store, op_dir)} p
        LEFT JOIN outcomes o ON o.seq = p.seq
        {where}
    """
    return Query(sql, "p.src", params, {"outcomes": table})


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
    store: DataStore,
    op_dir: str,
    kinds: tuple[str, ...],
    limit: int = 5,
    of: str = "apply",
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The first `limit` plan rows whose outcome `of` the apply or the rollback is one of
    `kinds`, and how many rows have each of them: what an apply or rollback shows of what it
    could not do. A rollback's are its own outcomes only: an item an interrupted apply
    announced and never carried out stays `unfinished` for apply, yet the rollback that
    settled it found it where it was, nothing to restore (the tryout's rollback listed 4,096
    such files as "not restored" under "Rolled back")."""
    table = outcomes.outcome_table(store, op_dir)
    column = "o.rollback_outcome" if of == "rollback" else "o.apply_outcome"
    sql = f"""
        SELECT p.src, p.dst, p.action, o.apply_outcome, o.rollback_outcome,
               coalesce(o.rollback_reason, o.apply_reason) AS outcome_reason, {column} AS outcome
        FROM {plan_items(store, op_dir)} p JOIN outcomes o ON o.seq = p.seq
        WHERE list_contains($kinds, {column})
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
    a folder left whole, or an entry on its own. `files` and `bytes` count the regular files
    the scan listed in it (as the summary and the tree do: not its links, nor its folders),
    `folders` the folders in it the scan did not enter (a root that is a project: its `src/`
    and `.git/`); a folder the scan never entered has all three null (not counted, on purpose)."""
    codes = codes_of(reason_code) or list(manifests.LEFT_ALONE_CODES)
    whole = "bool_or(kind = 'dir' AND src = coalesce(unit, src))"
    sql = f"""
        SELECT coalesce(unit, src) AS path, reason_code,
               arg_min(reason, length(reason)) AS reason,
               CASE WHEN {whole} THEN NULL ELSE count(*) FILTER (kind = 'file') END AS files,
               CASE WHEN {whole} THEN NULL
                    ELSE coalesce(sum(size) FILTER (kind = 'file'), 0)::BIGINT END AS bytes,
               CASE WHEN {whole} THEN NULL ELSE count(*) FILTER (kind = 'dir') END AS folders,
               NOT {whole} AS entered
        FROM {plan_source(store, op_dir)}
        WHERE list_contains($codes, reason_code)
        GROUP BY ALL
    """
    return Query(sql, "path", {"codes": codes})


def left_alone_totals(store: DataStore, op_dir: str) -> dict[str, int]:
    """All that the plan leaves alone by a rule: the regular files the scan listed and their
    bytes (the tree after apply holds them where they are, beside the files organized), and
    the folders it left whole without entering them (their files are not counted)."""
    sql = f"""
        SELECT count(*) FILTER (kind = 'file'),
               coalesce(sum(size) FILTER (kind = 'file'), 0)::BIGINT,
               count(*) FILTER (kind = 'dir')
        FROM {plan_source(store, op_dir)} WHERE list_contains($codes, reason_code)
    """
    with connect(store) as con:
        found = con.execute(sql, {"codes": list(manifests.LEFT_ALONE_CODES)}).fetchone()
    files, size, folders = found or (0, 0, 0)
    return {"files": int(files), "bytes": int(size), "folders": int(folders)}


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


# Sort keys: columns of the file listing.
FILE_SORTS = {"path": "path", "size": "size", "date": "date", "name": "path_text"}


def file_rows(
    store: DataStore, op_dir: str, limit: int | None = 50, offset: int = 0, **filters: Any
) -> tuple[list[dict[str, Any]], int]:
    """One page of the file listing; `filters` are FileFilters' fields."""
    return page(store, file_query(store, op_dir, **filters), limit, offset)


# Where FileFilters.conditions finds each column: in the shards (scan `s` joined with classify
# `c`), and in the listing manifest (storage.queries.listing_manifest: `name` lowered once there).
SHARD_COLUMNS = {
    "category": "c.category",
    "year": "c.year",
    "ext": "c.ext",
    "size": "s.size",
    "name": "lower(s.path_text)",
}
MANIFEST_COLUMNS = {c: c for c in ("category", "year", "ext", "size")} | {"name": "name_lower"}
FILE_FILTERS = ("category", "year", "ext", "min_size", "max_size", "name")


@dataclass(frozen=True)
class FileFilters:
    """What the file listing keeps (each filter when given) and its order: the one place the
    listing's parameters are named (file_query, file_rows and the pages take them as
    keywords)."""

    category: str | None = None
    year: int | None = None
    ext: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    name: str | None = None  # part of the path, any case
    sort: str = "path"
    descending: bool = False

    def asked(self) -> dict[str, Any]:
        """The filters as given, by name (what a page cursor is bound to)."""
        return {field: getattr(self, field) for field in FILE_FILTERS}

    def conditions(self, columns: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
        """The filters as SQL conditions on `columns`, with their parameters."""
        conditions: list[str] = []
        params: dict[str, Any] = {}
        for column, value, op in (
            ("category", self.category.lower() if self.category else None, "="),
            ("year", self.year, "="),
            ("ext", self.ext.lower().lstrip(".") if self.ext else None, "="),
            ("size", self.min_size, ">="),
            ("size", self.max_size, "<="),
        ):
            if value is not None:
                param = f"p{len(params)}"
                conditions.append(f"{columns[column]} {op} ${param}")
                params[param] = value
        if self.name:
            conditions.append(f"contains({columns['name']}, lower($name))")
            params["name"] = self.name
        return conditions, params


def file_query(store: DataStore, op_dir: str, **filters: Any) -> Query:
    """The file listing from the shards; `filters` are FileFilters' fields."""
    wanted = FileFilters(**filters)
    conditions, params = wanted.conditions(SHARD_COLUMNS)
    order = FILE_SORTS.get(wanted.sort)
    if order is None:
        raise ValueError(f"unknown sort {wanted.sort!r}: use {', '.join(FILE_SORTS)}")
    sql = f"""
        SELECT s.path, s.path_text, s.size, s.mtime_ns, c.category, c.ext, c.date, c.date_source,
               c.year
        FROM {source(store, op_dir, "scan")} s
        LEFT JOIN {source(store, op_dir, "classify")} c ON c.path = s.path
        WHERE {" AND ".join(["s.kind = 'file'", *conditions])}
    """
    direction = "DESC" if wanted.descending else "ASC"
    return Query(sql, f"{order} {direction} NULLS LAST, path", params)
