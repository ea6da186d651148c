"""`fileorg schedule add|list|remove`: recurring organize runs, as Prefect deployment schedules.

The operator's view of what POST/GET/DELETE /api/v1/schedules manage for users: schedules of
the scheduled-cleanup deployment on the Prefect server at PREFECT_API_URL, or without it on
the local background server `fileorg organize` uses (which `fileorg serve` uses too). The
deployment is registered, and its runs are started, by a runner: `fileorg serve`'s (or a
worker's); without one the runs wait. Schedules added here belong to no API user (owner `cli`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from contextlib import closing
from typing import Any

import typer

from flows.cli import app
from flows.cli.guards import refuse_broad_root, refuse_left_alone_root
from flows.cli.options import data_store
from flows.cli.render import emit_json, err, table
from storage.errors import UserError
from storage.vocabulary import DuplicatesPolicy, KeepPolicy
from tasks.plan.layout import parse_layout

schedules = typer.Typer(help="Recurring operations (Prefect deployment schedules).")
app.add_typer(schedules, name="schedule", no_args_is_help=True)


NO_RUNNER = (
    "note: no runner serves the deployments now: the runs wait (in the Prefect UI: Late) until "
    "`fileorg serve` runs, whose runner starts them"
)


def _run(call: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    """`call(scheduler)` against the Prefect server at PREFECT_API_URL, or, as `fileorg
    organize` does, the local background one (started if none runs: flows/cli/local_prefect)."""
    import asyncio

    from api.orchestrator import OrchestratorError, PrefectOrchestrator, PrefectScheduler
    from flows.cli.local_prefect import local_prefect

    with local_prefect():
        try:
            return asyncio.run(call(PrefectScheduler(PrefectOrchestrator(timeout=20))))
        except OrchestratorError as exc:
            raise UserError(str(exc)) from None


def _none_kept_locally() -> bool:
    """No PREFECT_API_URL, no local server running, and its database holds no schedule (it
    has none yet, or a read-only look finds the table empty): nothing to list or remove, so
    the server is not started for it. Any doubt (a database of another shape, a server of its
    own database) is False: the server is started and asked, as before."""
    import sqlite3

    from flows.cli import background

    if os.environ.get("PREFECT_API_URL") or os.environ.get(
        "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    ):
        return False
    folder = background.state_dir()
    if background.find(folder) is not None:
        return False
    database = folder / "home" / "prefect.db"
    if not database.exists():
        return True
    try:
        with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as con:
            (count,) = con.execute("SELECT count(*) FROM deployment_schedule").fetchone()
    except sqlite3.Error:
        return False
    return bool(count == 0)


async def _served() -> bool:
    """Whether a runner polled for the scheduled-cleanup deployment lately (Prefect marks a
    deployment READY while one does), so that its scheduled runs start when due."""
    from api.orchestrator import SCHEDULED_CLEANUP, PrefectOrchestrator

    async with PrefectOrchestrator(timeout=20).client("cannot read the deployment") as client:
        deployment = await client.read_deployment_by_name(SCHEDULED_CLEANUP)
    return str(getattr(deployment.status, "value", deployment.status)).upper() == "READY"


@schedules.command("add")
def add(
    path: str = typer.Argument(..., help="The root folder to organize on each run."),
    cron: str | None = typer.Option(None, help="A cron expression, e.g. '0 3 * * 0'."),
    every: int | None = typer.Option(None, help="Or an interval, in seconds."),
    timezone: str = typer.Option("UTC", help="The timezone cron times are in."),
    mode: str = typer.Option("category_year", help="Layout: category_year, category, ..."),
    duplicates: DuplicatesPolicy = typer.Option("report", help="What to do with copies."),
    keep: KeepPolicy = typer.Option("oldest", help="Which copy of a duplicate group stays."),
    apply: bool = typer.Option(False, "--apply", help="Apply each plan (default: dry runs)."),
    i_mean_it: bool = typer.Option(
        False, "--i-mean-it", help="Organize your whole home folder (never / or a system folder)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Schedule an organize run of PATH (a dry run unless --apply)."""
    from storage.operations import PlanOptions, check_options_for_root
    from storage.paths import to_param
    from storage.root_identity import identify
    from storage.roots import check_root

    cron = _checked_rule(cron, every, timezone)
    parse_layout(mode, None)
    root = check_root(path)
    refuse_broad_root(root, i_mean_it)
    refuse_left_alone_root(root, data_store(), False)  # its every run would fail on it
    options = PlanOptions.model_validate({"mode": mode, "duplicates": duplicates, "keep": keep})
    check_options_for_root(options, root)
    import secrets

    from api.orchestrator import ScheduleSpec  # Prefect's client: after the cheap checks

    parameters: dict[str, Any] = {
        "operation_id": "",
        "root": to_param(root),
        "options": options.model_dump(mode="json"),
        "dry_run": not apply,
        "root_identity": identify(root),
    }
    parameters["ticket"] = _schedule_ticket(parameters)
    spec = ScheduleSpec(
        slug=f"fileorg:cli:organize:{secrets.token_hex(4)}",
        parameters=parameters,
        cron=cron,
        interval_seconds=every,
        timezone=timezone,
    )

    async def added(scheduler: Any) -> tuple[Any, bool]:
        return await scheduler.add_schedule(spec), await _served()

    info, served = _run(added)
    if json_output:
        emit_json(_row(info))
    else:
        typer.echo(f"scheduled {info.id}: {_rule(info)} on {root}")
    if not served:
        err.print(NO_RUNNER)


def _checked_rule(cron: str | None, every: int | None, timezone: str) -> str | None:
    """Exactly one of a cron (checked, as the API checks one) and an interval of 1 s or more."""
    from storage.cron import check_timezone

    if (cron is None) == (every is None):
        raise UserError("give exactly one of --cron and --every")
    check_timezone(timezone)
    if every is not None and every < 1:
        raise UserError(f"--every must be 1 second or more (got {every})")
    if cron is None:
        return None
    from api.orchestrator import validate_cron  # Prefect's parser: only for a cron

    return validate_cron(cron, timezone)  # the API's rule: ours, then Prefect's parser


def _schedule_ticket(parameters: dict[str, Any]) -> str:
    """The operator's schedule is signed with the service's key, as the API signs one
    (storage.tickets; no owner: no grant to revoke), so that the runner accepts its runs."""
    from api.config import get_settings as api_settings
    from storage import tickets

    signed = {k: v for k, v in parameters.items() if k != "operation_id"}
    return tickets.sign(api_settings().resolved_secret(), {"kind": "schedule", **signed}, False)


def _rule(info: Any) -> str:
    if info.cron:
        return f"cron '{info.cron}' ({info.timezone})"
    return f"every {info.interval_seconds:g} s"


def _row(info: Any) -> dict[str, Any]:
    return {
        "id": info.id,
        "owner": info.slug.split(":")[1] if info.slug.count(":") == 3 else "",
        "rule": _rule(info),
        "root": info.parameters.get("root"),
        "dry_run": info.parameters.get("dry_run", True),
        "active": info.active,
    }


@schedules.command("list")
def list_(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every schedule of the scheduled-cleanup deployment (all owners)."""
    if _none_kept_locally():
        rows: list[dict[str, Any]] = []
    else:
        rows = [_row(info) for info in _run(lambda scheduler: scheduler.schedules())]
    if json_output:
        emit_json(rows)
        return
    if not rows:
        err.print("no schedules")
        return
    columns = ["id", "owner", "rule", "root", "dry_run", "active"]
    table("schedules", columns, [[str(r[c]) for c in columns] for r in rows])


@schedules.command("remove")
def remove(schedule_id: str = typer.Argument(..., help="The schedule's id.")) -> None:
    """Delete a schedule (its future runs go with it)."""
    import uuid

    try:
        uuid.UUID(schedule_id)
    except ValueError:
        raise UserError(f"not a schedule id: {schedule_id}") from None
    if _none_kept_locally():
        raise UserError(f"no schedule {schedule_id}: the local Prefect server keeps none")
    _run(lambda scheduler: scheduler.remove_schedule(schedule_id))
    typer.echo(f"removed {schedule_id}")
