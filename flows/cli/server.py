"""`fileorg status` and `fileorg stop`: the local Prefect server running in the background.

The first organize, apply or rollback without PREFECT_API_URL starts it (flows/cli/background.py)
and later ones reuse it. `status` says where it is (the Prefect UI's URL to open, the pid, how
long it has run, its home and log) or that none runs; `stop` stops it (exit 0 when none runs).
Neither imports Prefect.
"""

from __future__ import annotations

import os
import time
from typing import Any

import typer

from flows.cli import app

JSON = typer.Option(False, "--json", help="Print one JSON document.")


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _runner(runner: Any) -> dict[str, Any] | None:
    if runner is None:
        return None
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(runner.started))
    return {"pid": runner.pid, "ready": runner.ready, "started_at": started}


def _use(folder: Any, server: Any) -> dict[str, Any]:
    """When it was last used, whether a run uses it now, and what it runs."""
    from flows.cli import background, server_use

    last = server_use.last_use(folder, server.started)
    prefect, fileorg = background.running_versions()
    return {
        "in_use": server_use.in_use(folder),
        "last_used_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)),
        "idle_seconds": round(max(0.0, time.time() - last), 1),
        "idle_stop_minutes": server.idle_minutes or None,  # None: it never stops itself
        "prefect_version": server.prefect_version or None,
        "fileorg_version": server.fileorg_version or None,
        "outdated": (server.prefect_version, server.fileorg_version) != (prefect, fileorg),
    }


def _use_lines(document: dict[str, Any]) -> str:
    if document["in_use"]:
        used = "now (a run uses it)"
    else:
        used = f"{_uptime(document['idle_seconds'])} ago"
    minutes = document["idle_stop_minutes"]
    stops = f"stops itself after {_uptime(minutes * 60)} unused" if minutes else "never idles out"
    prefect, fileorg = document["prefect_version"] or "?", document["fileorg_version"] or "?"
    runs = f"Prefect {prefect}, fileorg {fileorg}"
    if document["outdated"]:
        runs += " (not this code's: the next run replaces it)"
    return f"  last used    {used} ({stops})\n  versions     {runs}\n"


def _document(folder: Any, server: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "running": server is not None,
        "state_dir": str(folder),
        "log": str(folder / "server.log"),
        "prefect_api_url": os.environ.get("PREFECT_API_URL") or None,  # what runs use instead
    }
    if server is not None:
        document.update(
            url=server.ui_url,
            api_url=server.api_url,
            pid=server.pid,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(server.started)),
            uptime_seconds=round(time.time() - server.started, 1),
            home=server.home,
            **_use(folder, server),
        )
    return document


@app.command()
def status(json_output: bool = JSON) -> None:
    """The local Prefect server that runs in the background: its UI's URL, pid, uptime, home."""
    from flows.cli import background, warm_state
    from flows.cli.render import emit_json

    folder = background.state_dir()
    server = background.find(folder)
    runner = warm_state.find(folder)
    document = {**_document(folder, server), "runner": _runner(runner)}
    if json_output:
        emit_json(document)
        return
    if server is None:
        typer.echo(
            "no local Prefect server is running (the next organize, apply or rollback starts one)"
        )
    else:
        typer.echo(
            "local Prefect server running\n"
            f"  Prefect UI   {server.ui_url}\n"
            f"  Prefect API  {server.api_url}\n"
            f"  pid          {server.pid} (up {_uptime(time.time() - server.started)})\n"
            f"  home         {server.home}\n"
            f"{_use_lines(document)}"
            f"  log          {document['log']}"
        )
    if runner is not None:
        state = "ready" if runner.ready else "starting"
        up = _uptime(time.time() - runner.started)
        typer.echo(f"  warm runner  pid {runner.pid} ({state}, up {up})")
    if server is not None or runner is not None:
        typer.echo("stop it with: fileorg stop")
    if document["prefect_api_url"]:
        typer.echo(f"(runs use PREFECT_API_URL={document['prefect_api_url']} instead)")


@app.command()
def stop(
    json_output: bool = JSON,
    force: bool = typer.Option(
        False, "--force", help="Stop it even while a run uses it (that run loses its server)."
    ),
) -> None:
    """Stop the local Prefect server that runs in the background (nothing to do if none runs);
    refused while a run still uses it, unless --force."""
    from flows.cli import server_stop
    from flows.cli.render import emit_json

    done = server_stop.stop(force=force)
    stopped, runner = done.server, done.runner
    if json_output:
        emit_json(
            {
                "stopped": stopped is not None,
                "pid": stopped.pid if stopped else None,
                "runner_pid": runner.pid if runner else None,
            }
        )
        return
    if stopped is None:
        typer.echo("no local Prefect server was running")
    else:
        typer.echo(f"stopped the local Prefect server (pid {stopped.pid})")
    if runner is not None:
        typer.echo(f"stopped the warm runner (pid {runner.pid})")
