"""Commands that run flows in this process: organize (and, with part 2, apply and rollback)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import typer

from flows.cli import app
from flows.cli.bar import ProgressBars
from flows.cli.render import emit_json, err, summary, table
from storage.errors import UserError
from storage.operations import PlanOptions, check_options_for_root
from storage.paths import to_param
from storage.roots import check_root
from tasks.layout import parse_layout


class Duplicates(StrEnum):
    report = "report"
    quarantine = "quarantine"
    hardlink = "hardlink"


class Keep(StrEnum):
    oldest = "oldest"
    newest = "newest"
    shortest_path = "shortest-path"


def run_with_progress(json_output: bool, fn: Any, **kwargs: Any) -> Any:
    from tasks.progress import sink_installed

    with ProgressBars(enabled=not json_output) as bars, sink_installed(bars):
        return fn(**kwargs)


@app.command()
def organize(
    path: str = typer.Argument(..., help="The root folder to organize."),
    mode: str = typer.Option(
        "category_year", help="category_year, category, year_month, extension."
    ),
    template: str | None = typer.Option(
        None, help="A layout such as '{category}/{year}/{month:02d}/{name}' (overrides --mode)."
    ),
    duplicates: Duplicates = typer.Option(
        Duplicates.report, help="What to do with duplicate copies."
    ),
    keep: Keep = typer.Option(Keep.oldest, help="Which copy of a duplicate group stays."),
    include_empty: bool = typer.Option(
        False, help="Count empty files as duplicates of each other."
    ),
    exclude: list[str] = typer.Option([], help="Folder or file name patterns to leave alone."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Plan only: change nothing (review, then `fileorg apply`)."
    ),
    operation_id: str | None = typer.Option(None, "--id", help="Resume this operation."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Scan PATH, find duplicates, classify files and plan an organized layout."""
    parse_layout(mode, template)
    root = check_root(path)
    op_id = _new_or_given_id(operation_id)
    options = PlanOptions(
        mode=mode,
        template=template,
        duplicates=duplicates.value,
        keep=keep.value,
        include_empty=include_empty,
        exclude=exclude,
    )
    check_options_for_root(options, root)
    from flows.organize import organize_flow

    if not json_output:
        err.print(f"operation [bold]{op_id}[/bold] on {root}")
    report = run_with_progress(
        json_output,
        organize_flow,
        operation_id=op_id,
        root=to_param(root),
        options=options,
        dry_run=dry_run,
    )
    status = "planned" if dry_run else _status(op_id)
    if json_output:
        emit_json({"operation_id": op_id, "status": status, "report": report})
        return
    summary(report)
    if not dry_run:
        _apply_summary(report.get("apply", {}))
    err.print(f"\noperation id: [bold]{op_id}[/bold] ({status})")
    if dry_run:
        err.print(f"review it: fileorg plan {op_id}; then: fileorg apply {op_id}")
    else:
        err.print(f"undo it: fileorg rollback {op_id}")


def _new_or_given_id(operation_id: str | None) -> str:
    if operation_id is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(operation_id))
    except ValueError:
        raise UserError(f"operation id {operation_id!r} is not a UUID") from None


def _status(operation_id: str) -> str:
    from storage import operations
    from storage.locations import DataStore
    from storage.settings import get_settings

    return operations.load(DataStore(get_settings().data_url), operation_id).status


def _apply_summary(counts: dict[str, int]) -> None:
    table(
        "Applied",
        ["moved", "skipped: changed", "vanished", "conflicts", "unsafe", "errors"],
        [
            [
                str(counts.get(k, 0))
                for k in ("done", "changed", "vanished", "conflicts", "unsafe", "errors")
            ]
        ],
    )


@app.command()
def apply(
    operation_id: str,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Apply a reviewed dry-run plan, re-checking every file; finishes an interrupted apply."""
    from storage import operations
    from storage.locations import DataStore
    from storage.settings import get_settings

    store = DataStore(get_settings().data_url)
    record = operations.load(store, operation_id)
    from flows.apply import check_can_apply

    check_can_apply(record)
    check_root(record.root)
    from flows.apply import apply_plan_flow

    result = run_with_progress(json_output, apply_plan_flow, operation_id=record.id)
    status = _status(record.id)
    counts = result.get("apply", {})
    if json_output:
        emit_json({"operation_id": record.id, "status": status, "apply": counts})
        return
    _apply_summary(counts)
    err.print(
        f"operation [bold]{record.id}[/bold]: {status}; undo it: fileorg rollback {record.id}"
    )


@app.command()
def rollback(
    operation_id: str,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Undo an applied operation, newest move first; run it again to finish an interrupted one."""
    from storage import operations
    from storage.locations import DataStore
    from storage.settings import get_settings

    store = DataStore(get_settings().data_url)
    record = operations.load(store, operation_id)
    from flows.apply import check_can_roll_back

    if check_can_roll_back(store, record):
        check_root(record.root)
    from flows.apply import rollback_flow

    result = run_with_progress(json_output, rollback_flow, operation_id=record.id)
    status = _status(record.id)
    if json_output:
        emit_json({"operation_id": record.id, "status": status, "rollback": result})
        return
    if result.get("already_rolled_back"):
        err.print(f"operation {record.id} is already rolled back: nothing to undo")
        return
    table(
        "Rolled back",
        ["restored", "refused", "folders removed"],
        [[str(result["undone"]), str(result["refused"]), str(result["folders_removed"])]],
    )
    err.print(f"operation [bold]{record.id}[/bold]: {status}")
