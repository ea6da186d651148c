"""Commands that only read an operation's manifests (DuckDB); they never import Prefect."""

from __future__ import annotations

import os

import typer

from flows.cli import app
from flows.cli.render import emit_json, err, path_text, shown, summary, table
from storage import operations, queries
from storage.errors import OperationStateError, UserError
from storage.locations import DataStore
from storage.settings import get_settings
from tasks.report import human_bytes, read_report

LIMIT = typer.Option(50, help="Rows per page.")
OFFSET = typer.Option(0, help="Rows to skip.")
JSON = typer.Option(False, "--json", help="Print one JSON document.")


def _operation(operation_id: str, stage: str) -> tuple[DataStore, str, operations.OperationRecord]:
    store = DataStore(get_settings().data_url)
    record = operations.load(store, operation_id)
    op_dir = store.operation_dir(record.id)
    if not queries.has_shards(store, op_dir, stage):
        raise OperationStateError(
            f"operation {record.id} has no {stage} yet (status: {record.status})"
        )
    return store, op_dir, record


def _page_note(shown_rows: int, offset: int, total: int) -> None:
    if total > shown_rows:
        err.print(f"rows {offset + 1}-{offset + shown_rows} of {total:,}; use --offset/--limit")


@app.command()
def plan(
    operation_id: str,
    action: str | None = typer.Option(None, help="Only move, keep, skip, quarantine or hardlink."),
    limit: int = LIMIT,
    offset: int = OFFSET,
    json_output: bool = JSON,
) -> None:
    """The planned moves, paged: source -> destination, and why."""
    store, op_dir, _ = _operation(operation_id, "plan")
    rows, total = queries.plan_rows(store, op_dir, action, limit, offset)
    if json_output:
        emit_json(
            {
                "operation_id": operation_id,
                "total": total,
                "offset": offset,
                "items": [
                    {
                        **r,
                        "src": path_text(r["src"]),
                        "dst": path_text(r["dst"]),
                        "link_to": path_text(r["link_to"]),
                    }
                    for r in rows
                ],
            }
        )
        return
    table(
        None,
        ["source", "destination", "action", "reason"],
        [[shown(r["src"]), shown(r["dst"]), r["action"], r["reason"]] for r in rows],
    )
    _page_note(len(rows), offset, total)


@app.command()
def duplicates(
    operation_id: str, limit: int = LIMIT, offset: int = OFFSET, json_output: bool = JSON
) -> None:
    """Duplicate groups, largest waste first."""
    store, op_dir, record = _operation(operation_id, "hash")
    rows, total = queries.duplicate_groups(
        store, op_dir, record.options.include_empty, limit, offset
    )
    if json_output:
        emit_json(
            {
                "operation_id": operation_id,
                "total": total,
                "offset": offset,
                "groups": [
                    {
                        "digest": r["digest"],
                        "size": r["size"],
                        "copies": r["copies"],
                        "wasted_bytes": r["wasted_bytes"],
                        "paths": [path_text(p) for p in r["paths"]],
                    }
                    for r in rows
                ],
            }
        )
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
    _page_note(len(rows), offset, total)


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
    limit: int = LIMIT,
    offset: int = OFFSET,
    json_output: bool = JSON,
) -> None:
    """The files of an operation, filtered and sorted."""
    store, op_dir, _ = _operation(operation_id, "classify")
    if sort not in queries.FILE_SORTS:
        raise UserError(f"unknown sort {sort!r}: use {', '.join(queries.FILE_SORTS)}")
    rows, total = queries.file_rows(
        store, op_dir, category, year, ext, min_size, max_size, name, sort, desc, limit, offset
    )
    if json_output:
        emit_json(
            {
                "operation_id": operation_id,
                "total": total,
                "offset": offset,
                "items": [
                    {
                        "path": path_text(r["path"]),
                        "size": r["size"],
                        "category": r["category"],
                        "ext": r["ext"],
                        "date": r["date"],
                        "date_source": r["date_source"],
                    }
                    for r in rows
                ],
            }
        )
        return
    table(
        None,
        ["path", "size", "category", "date", "from"],
        [
            [
                r["path_text"],
                human_bytes(r["size"]),
                r["category"] or "",
                r["date"].date().isoformat() if r["date"] else "",
                r["date_source"] or "",
            ]
            for r in rows
        ],
    )
    _page_note(len(rows), offset, total)


@app.command()
def report(operation_id: str, json_output: bool = JSON) -> None:
    """Counts and bytes per category and year, duplicates, planned moves, errors, timings."""
    store = DataStore(get_settings().data_url)
    record = operations.load(store, operation_id)
    built = read_report(store, store.operation_dir(record.id))
    if built is None:
        raise OperationStateError(
            f"operation {record.id} has no report yet (status: {record.status})"
        )
    if json_output:
        emit_json(built)
        return
    summary(built)
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
) -> None:
    """Past operations, newest first, with their status."""
    store = DataStore(get_settings().data_url)
    records = [r for r in operations.list_all(store) if status is None or r.status == status]
    if json_output:
        emit_json({"operations": [r.model_dump(mode="json") for r in records]})
        return
    table(
        None,
        ["id", "created", "status", "root", "files", "moves"],
        [
            [
                r.id,
                r.created_at.strftime("%Y-%m-%d %H:%M"),
                r.status,
                r.root,
                str(r.summary.get("files", "")),
                str(r.summary.get("moves", "")),
            ]
            for r in records
        ],
    )
