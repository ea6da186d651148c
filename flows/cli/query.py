"""Commands that only read an operation's manifests (DuckDB); they never import Prefect.

DuckDB, pyarrow and pydantic are imported inside the commands, after what was typed is
checked: the CLI imports this module for every command, `--help` and `--version` included.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import typer

from flows.cli import app, options, views
from flows.cli.render import (
    emit_json,
    emit_jsonl,
    err,
    escaped,
    path_text,
    report_details,
    shown,
    summary,
    table,
)
from storage.errors import OperationStateError, UserError
from storage.vocabulary import OUTCOMES, PLAN_ACTIONS

if TYPE_CHECKING:
    from storage import queries
    from storage.locations import DataStore
    from storage.operations import OperationRecord

PAGE = 50

LIMIT = typer.Option(None, help=f"Rows per page (default {PAGE}).")
OFFSET = typer.Option(0, help="Rows to skip.")
CURSOR = typer.Option(
    None, help="The rows after the last of a page: its next_cursor (same filters and sort)."
)
ALL = typer.Option(False, "--all", help="Every row, not one page (table or --json).")
JSON = typer.Option(False, "--json", help="Print one JSON document.")
JSONL = typer.Option(
    False, "--jsonl", help="Every row as JSON Lines (one object a line), streamed."
)


@dataclass(frozen=True)
class Output:
    """How a listing prints: a page (table or --json), every row, or streamed JSON Lines."""

    limit: int | None
    offset: int
    json: bool
    jsonl: bool
    cursor: str | None = None  # a page's next_cursor: the page after it

    @classmethod
    def of(
        cls,
        limit: int | None,
        offset: int,
        every: bool,
        json: bool,
        jsonl: bool,
        cursor: str | None = None,
    ) -> Output:
        if json and jsonl:
            raise UserError("--json and --jsonl: choose one")
        options.page(limit, offset)
        if cursor is not None and (every or jsonl or offset):
            given = "--all" if every else "--jsonl" if jsonl else "--offset"
            raise UserError(f"--cursor and {given}: choose one")
        if limit is None and not (every or jsonl):
            limit = PAGE
        return cls(limit, offset, json, jsonl, cursor)


def _operation(operation_id: str, stage: str) -> tuple[DataStore, str, OperationRecord]:
    from storage import queries

    store = options.data_store()
    record = options.operation(operation_id, store)
    op_dir = store.operation_dir(record.id)
    if not queries.has_shards(store, op_dir, stage):
        raise OperationStateError(
            f"operation {record.id} has no {stage} yet (status: {record.status})"
        )
    return store, op_dir, record


Pager = Callable[[int, int, "str | None"], "queries.Page"]


def _listing(
    store: DataStore,
    query: queries.Query,
    pager: Pager,
    output: Output,
    document: dict[str, Any],
    key: str,
    item: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[dict[str, Any]] | None:
    """Print the rows as JSON Lines or one JSON document; the rows (for a table) otherwise.
    A page (a limit) is the API's (storage.queries.pages: the listing manifest once built, by
    offset or cursor); every row is the shards' query, streamed or whole."""
    from storage import queries

    if output.jsonl:
        emit_jsonl(
            [item(row) for row in batch]
            for batch in queries.stream(store, query, output.offset, output.limit)
        )
        return None
    if output.limit is None:
        rows, total = queries.page(store, query, None, output.offset)
        following = None
    else:
        got = pager(output.limit, output.offset, output.cursor)
        rows, total, following = got.rows, got.count, got.next_cursor
    if output.json:
        listed = [item(r) for r in rows]
        emit_json(
            {**document, "total": total, "offset": output.offset, key: listed}
            | {"next_cursor": following}
        )
        return None
    if total > len(rows):
        err.print(_hint(output, len(rows), total, following), soft_wrap=True)
    return rows


def _hint(output: Output, shown_rows: int, total: int, following: str | None) -> str:
    """One line (never wrapped: the cursor is copied from it) saying how to go on."""
    if output.cursor is not None:  # where a cursor's page starts is not counted
        where = f"{shown_rows} of {total:,} rows"
        return f"{where}; next: --cursor {following}" if following else f"{where}, the last"
    first, last = output.offset + 1, output.offset + shown_rows
    if shown_rows == 0:  # not "rows 100000-99999 of 6" (the tryout's --offset 99999)
        return f"--offset {output.offset} is past the last row: there are {total:,}"
    where = f"rows {first}-{last} of {total:,}"
    if following is None:
        return where
    return f"{where}; next: --cursor {following} (or --offset {last}), or --all"


def plan_item(row: dict[str, Any]) -> dict[str, Any]:
    from storage import queries

    return {**row, **{k: path_text(row[k]) for k in queries.PLAN_PATHS}}


@app.command()
def plan(
    operation_id: str = typer.Argument(..., help="An id, a unique prefix, or 'last'."),
    action: str | None = typer.Option(None, help="Only move, keep, skip, quarantine or hardlink."),
    outcome: str | None = typer.Option(
        None, help="Only files whose apply or rollback ended so: " + ", ".join(OUTCOMES) + "."
    ),
    wide: bool = typer.Option(False, "--wide", help="Whole paths, however wide the rows."),
    limit: int | None = LIMIT,
    offset: int = OFFSET,
    cursor: str | None = CURSOR,
    every: bool = ALL,
    json_output: bool = JSON,
    jsonl: bool = JSONL,
) -> None:
    """The planned moves, paged: source -> destination, and why (or what became of them)."""
    action = options.choice(action, PLAN_ACTIONS, "action")
    outcome = options.choice(outcome, OUTCOMES, "outcome")
    output = Output.of(limit, offset, every, json_output, jsonl, cursor)
    from storage import queries

    store, op_dir, record = _operation(operation_id, "plan")
    query = queries.plan_query(store, op_dir, action, outcome)

    def pager(limit: int, offset: int, cursor: str | None) -> queries.Page:
        return queries.plan_page(
            store, op_dir, limit, offset, cursor, action=action, outcome=outcome
        )

    document = {"operation_id": record.id}
    rows = _listing(store, query, pager, output, document, "items", plan_item)
    if rows is None:
        return
    if not rows:
        what = f" with outcome {outcome}" if outcome else f" with action {action}" if action else ""
        err.print(f"no planned files{what}")
        return
    if outcome:
        columns = ["source", "destination", "outcome", "why"]
        cells = [[r["rollback_outcome"] or r["apply_outcome"], r["outcome_reason"]] for r in rows]
    else:
        columns = ["source", "destination", "action", "reason"]
        cells = [[r["action"], r["reason"]] for r in rows]
    body = [  # a reason can hold a name too
        [shown(r["src"]), shown(r["dst"]), *(escaped(c or "") for c in extra)]
        for r, extra in zip(rows, cells, strict=True)
    ]
    views.rows_table(columns, body, 2, wide)


def group_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "digest": row["digest"],
        "size": row["size"],
        "copies": row["copies"],
        "wasted_bytes": row["wasted_bytes"],
        "paths": [path_text(p) for p in row["paths"]],
    }


@app.command()
def duplicates(
    operation_id: str,
    limit: int | None = LIMIT,
    offset: int = OFFSET,
    cursor: str | None = CURSOR,
    every: bool = ALL,
    json_output: bool = JSON,
    jsonl: bool = JSONL,
) -> None:
    """Duplicate groups, largest waste first."""
    output = Output.of(limit, offset, every, json_output, jsonl, cursor)
    from storage import queries
    from tasks.report import human_bytes

    store, op_dir, record = _operation(operation_id, "hash")
    include_empty = record.options.include_empty
    query = queries.duplicate_query(store, op_dir, include_empty)

    def pager(limit: int, offset: int, cursor: str | None) -> queries.Page:
        return queries.duplicates_page(
            store, op_dir, limit, offset, cursor, include_empty=include_empty
        )

    document = {"operation_id": record.id}
    rows = _listing(store, query, pager, output, document, "groups", group_item)
    if rows is None:
        return
    if not rows:
        err.print("no duplicate groups")
        return
    table(
        None,
        ["copies", "size", "wasted", "files"],
        [
            [
                str(r["copies"]),
                human_bytes(r["size"]),
                human_bytes(r["wasted_bytes"]),
                "\n".join(shown(p) for p in r["paths"]),
            ]
            for r in rows
        ],
    )


def file_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": path_text(row["path"]),
        "size": row["size"],
        "category": row["category"],
        "ext": row["ext"],
        "date": row["date"],
        "date_source": row["date_source"],
    }


@app.command()
def files(
    operation_id: str,
    category: str | None = typer.Option(None, help="images, videos, documents, ..."),
    year: int | None = typer.Option(None),
    ext: str | None = typer.Option(None, help="Extension, without the dot."),
    min_size: int | None = typer.Option(None, help="Bytes."),
    max_size: int | None = typer.Option(None, help="Bytes."),
    name: str | None = typer.Option(None, help="Part of the path, any case."),
    sort: str = typer.Option("path", help="path, size, date or name."),
    desc: bool = typer.Option(False, help="Largest, newest or last first."),
    limit: int | None = LIMIT,
    offset: int = OFFSET,
    cursor: str | None = CURSOR,
    every: bool = ALL,
    json_output: bool = JSON,
    jsonl: bool = JSONL,
) -> None:
    """The files of an operation, filtered and sorted."""
    from storage.vocabulary import CATEGORIES  # imports nothing

    category = options.choice(category, CATEGORIES, "category")
    from storage import queries
    from tasks.report import human_bytes

    sort = options.choice(sort, queries.FILE_SORTS, "sort") or "path"
    output = Output.of(limit, offset, every, json_output, jsonl, cursor)
    options.at_least(min_size, 0, "--min-size")
    options.at_least(max_size, 0, "--max-size")
    options.at_least(year, 1, "--year")
    if min_size is not None and max_size is not None and min_size > max_size:
        raise UserError(f"--min-size {min_size} is more than --max-size {max_size}")
    store, op_dir, record = _operation(operation_id, "classify")
    asked: dict[str, Any] = {"category": category, "year": year, "ext": ext, "min_size": min_size}
    asked |= {"max_size": max_size, "name": name, "sort": sort, "descending": desc}
    query = queries.file_query(store, op_dir, **asked)

    def pager(limit: int, offset: int, cursor: str | None) -> queries.Page:
        return queries.files_page(store, op_dir, limit, offset, cursor, **asked)

    document = {"operation_id": record.id}
    rows = _listing(store, query, pager, output, document, "items", file_item)
    if rows is None:
        return
    if not rows:
        err.print("no files match")
        return
    table(
        None,
        ["path", "size", "category", "date", "from"],
        [
            [
                shown(r["path"]),
                human_bytes(r["size"]),
                r["category"] or "",
                r["date"].date().isoformat() if r["date"] else "",
                r["date_source"] or "",
            ]
            for r in rows
        ],
    )


@app.command()
def report(operation_id: str, json_output: bool = JSON) -> None:
    """Counts and bytes per category and year, duplicates, planned moves, errors, timings."""
    from storage import manifests

    store = options.data_store()
    record = options.operation(operation_id, store)
    built = manifests.read_report(store, store.operation_dir(record.id))
    if built is None:
        raise OperationStateError(
            f"operation {record.id} has no report yet (status: {record.status})"
        )
    if json_output:
        emit_json(built)
        return
    summary(built)
    report_details(built)
    if built["errors"]["items"]:
        table(
            "Problems",
            ["path", "stage", "error"],
            [
                [shown(os.fsencode(e["path"])), e["stage"], e["error"]]
                for e in built["errors"]["items"][:20]
            ],
        )


@app.command("operations")
def list_operations(
    status: str | None = typer.Option(None, help="Only operations with this status."),
    json_output: bool = JSON,
    jsonl: bool = JSONL,
) -> None:
    """Past operations, newest first, with their status (every one: this list is not paged)."""
    Output.of(None, 0, True, json_output, jsonl)
    from storage import locks, operations

    status = options.choice(status, get_args(operations.Status), "status")
    store = options.data_store()

    found = [locks.reconcile(store, r) for r in operations.list_all(store)]
    records = [r for r in found if status is None or r.status == status]
    if jsonl:
        emit_jsonl([r.model_dump(mode="json")] for r in records)
        return
    if json_output:
        emit_json({"operations": [r.model_dump(mode="json") for r in records]})
        return
    if not records:
        err.print(f"no operations with status {status}" if status else "no operations yet")
        return
    ids = options.short_ids([r.id for r in operations.list_all(store)])
    whose = any(r.owner for r in records)  # an API user's beside the CLI's: say whose is whose
    table(
        None,
        ["id", "created", "status", "root", "files", "moves", *["by"] * whose],
        [
            [ids[r.id], r.created_at.strftime("%Y-%m-%d %H:%M"), r.status, escaped(r.root)]
            + [str(r.summary.get("files", "")), str(r.summary.get("moves", ""))]
            + ([f"API user {r.owner[:8]}" if r.owner else "CLI"] if whose else [])
            for r in records
        ],
    )
