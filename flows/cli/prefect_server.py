"""The background Prefect server's own process (`python -m flows.cli.prefect_server FOLDER PORT
IDLE_MINUTES`, started by flows/cli/background.py): Prefect's app under uvicorn, and a
watchdog that stops it after IDLE_MINUTES unused (0: never).

Idle, it still costs 1-2% of a core (Prefect's services poll its database), for as long as
the machine is up. Used means: a run holds the in-use lock (flows/cli/server_use.py), or
something other than a health check asked it anything (the UI in a browser, a client named
by PREFECT_API_URL). `fileorg status` asks /health only, so looking does not keep it alive.
Idle for long enough, it stops as `fileorg stop` would, the warm runner beside it included
(200 MB held for a run that may never come): the next run starts both again, once. It holds
server.lock from the decision until its exit, so a run never finds a server that is leaving.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from flows.cli import background, prefect_db, server_use, warm_state

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Any, Any], Awaitable[None]]
STOP_SECONDS = 30.0  # a deadline for uvicorn's graceful shutdown, then the process ends


class Requests:
    """Prefect's app, noting when it was last asked something that is not a health check."""

    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.last = time.time()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not scope["path"].endswith("/health"):
            self.last = time.time()
        await self.app(scope, receive, send)


def idle_for(folder: Path, requests: Requests, now: float) -> float:
    """Seconds since the server was last used (0 while a run uses it)."""
    if server_use.in_use(folder):
        server_use.touch(folder)  # a killed run's last touch would be its start
        return 0.0
    record = background.read_record(folder)
    started = record.started if record is not None and record.pid == os.getpid() else 0.0
    return now - max(server_use.last_use(folder, started), requests.last)


def stop_if_idle(folder: Path, requests: Requests, idle: float) -> int | None:
    """Take server.lock (the descriptor returned: held until this process ends) and forget
    the record, when no run uses the server and none has for `idle` seconds; else None."""
    if idle_for(folder, requests, time.time()) < idle:
        return None
    lock = background.try_lock(folder)
    if lock is None:
        return None  # a run is finding or starting it: it will be used
    if idle_for(folder, requests, time.time()) < idle:  # a run took it, or let go, meanwhile
        os.close(lock)
        return None
    record = background.read_record(folder)
    if record is not None and record.pid == os.getpid():
        background.forget(folder)
    said = f"server pid {os.getpid()} stopped itself: unused for {idle / 60:g} min"
    background.note(folder, said)
    warm_state.stop(folder)
    return lock


def watch(folder: Path, requests: Requests, idle: float, server: Any) -> None:
    every = max(0.5, min(60.0, idle / 4))
    while stop_if_idle(folder, requests, idle) is None:
        time.sleep(every)
    server.should_exit = True  # uvicorn's graceful shutdown, as on SIGTERM
    time.sleep(STOP_SECONDS)
    os._exit(0)  # the shutdown hung: end here (the lock goes with the process)


def main(argv: list[str]) -> None:
    from prefect.server.api.server import create_app
    from prefect.settings import (
        PREFECT_API_BLOCKS_REGISTER_ON_START,
        PREFECT_API_DATABASE_MIGRATE_ON_START,
        temporary_settings,
    )

    folder, port, idle = Path(argv[1]), int(argv[2]), float(argv[3]) * 60
    home = Path(os.environ["PREFECT_HOME"])
    # Before the app: its start migrates whatever database it finds and registers the block
    # catalog in it. A home just seeded holds a template of this very Prefect's head revision
    # (nothing to migrate, but every migration script loaded to learn that: ~0.8 s), with
    # the catalog in it when the template was made by this version of prefect_db (~1.6 s).
    skip: dict[Any, bool] = {}
    if prefect_db.prepare(home, os.environ):
        skip[PREFECT_API_DATABASE_MIGRATE_ON_START] = False
        if prefect_db.blocks_registered(home / "prefect.db"):
            skip[PREFECT_API_BLOCKS_REGISTER_ON_START] = False
    with temporary_settings(skip):
        _serve(folder, port, idle, create_app)


def _serve(folder: Path, port: int, idle: float, create_app: Callable[[], Any]) -> None:
    import uvicorn

    requests = Requests(create_app())
    config = uvicorn.Config(
        requests,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    if idle > 0:
        args = (folder, requests, idle, server)
        threading.Thread(target=watch, args=args, name="idle-stop", daemon=True).start()
    server.run()


if __name__ == "__main__":
    main(sys.argv)
