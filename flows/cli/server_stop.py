"""Stopping the background Prefect server and the warm runner beside it (`fileorg stop`),
never from under a run that still reports to the server unless forced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flows.cli import server_use, warm_state
from flows.cli.background import (
    BackgroundServerError,
    Server,
    forget,
    kill,
    locked,
    note,
    ours,
    read_record,
    state_dir,
)


def stop(folder: Path | None = None, force: bool = False) -> Stopped:
    """Stop the background server and the warm runner beside it (what was running of them),
    unless a run still reports to the server and not `force`: that run would lose it midway
    (its states and logs unrecorded, ~75 s of retries), so the user is told instead. While
    this holds server.lock and the use lock, no run can start using either."""
    folder = folder or state_dir()
    if not folder.exists():
        return Stopped(None, None)
    server_use.done(folder)  # this process's own use, if any, ends with the server
    with locked(folder), server_use.unused(folder) as unused:
        server = read_record(folder)
        running = server is not None and ours(server)
        if server is not None and running and not unused and not force:
            raise BackgroundServerError(
                f"a run is using the local Prefect server (pid {server.pid}): it was not "
                "stopped; run this again when that run has ended (fileorg stop --force stops "
                "it now, and that run loses its server)"
            )
        runner = warm_state.stop(folder)
        if server is not None and running:
            kill(server)
            note(folder, f"stopped server pid {server.pid}")
        forget(folder)
    return Stopped(server if running else None, runner)


@dataclass(frozen=True)
class Stopped:
    server: Server | None
    runner: warm_state.Runner | None
