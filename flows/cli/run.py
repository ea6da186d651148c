"""Commands that run flows in this process: organize (and, with part 2, apply and rollback)."""

from __future__ import annotations

import os
import uuid
from enum import StrEnum
from typing import Any

import typer

from flows.cli import app
from flows.cli.bar import ProgressBars
from flows.cli.render import emit_json, err, summary
from storage.operations import PlanOptions
from tasks.layout import parse_layout
from tasks.scan import check_root


class Duplicates(StrEnum):
    report = "report"
    quarantine = "quarantine"
    hardlink = "hardlink"


class Keep(StrEnum):
    oldest = "oldest"
    newest = "newest"
    shortest_path = "shortest-path"


def _quiet_prefect() -> None:
    # Prefect's INFO logs would tear through the progress bar; its warnings still show.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_SERVER_LEVEL", "WARNING")
    # The temporary server's telemetry cannot reach the internet from offline machines.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


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
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan only: change nothing."),
    operation_id: str | None = typer.Option(None, "--id", help="Resume this operation."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Scan PATH, find duplicates, classify files and plan an organized layout."""
    parse_layout(mode, template)
    root = check_root(path)
    op_id = str(uuid.UUID(operation_id)) if operation_id else str(uuid.uuid4())
    options = PlanOptions(
        mode=mode,
        template=template,
        duplicates=duplicates.value,
        keep=keep.value,
        include_empty=include_empty,
        exclude=exclude,
    )
    if not dry_run:
        from storage.errors import OperationStateError

        raise OperationStateError("applying a plan is not available yet: add --dry-run")
    _quiet_prefect()
    from flows.organize import organize_flow

    if not json_output:
        err.print(f"operation [bold]{op_id}[/bold] on {root}")
    report = run_with_progress(
        json_output, organize_flow, operation_id=op_id, root=root, options=options, dry_run=dry_run
    )
    if json_output:
        emit_json({"operation_id": op_id, "status": "planned", "report": report})
        return
    summary(report)
    err.print(f"\noperation id: [bold]{op_id}[/bold]")
    err.print(f"review it: fileorg plan {op_id}  |  fileorg duplicates {op_id}")
