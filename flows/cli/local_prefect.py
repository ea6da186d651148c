"""The Prefect server a CLI run reports to when PREFECT_API_URL names none: the background one.

Prefect would start one itself (its "ephemeral" server), but as a child in our process group:
Ctrl-C in the terminal killed it first, and the interrupted run then spent about 75 s retrying
connections to it. Until issue 14 the CLI started one of its own per run, in a session of its
own, and stopped it at the end: ~10 s of every run. Now the first run starts the background
server (flows/cli/background.py), which later runs reuse: it outlives a Ctrl-C by construction,
so an interrupted run can still record how it ended, and `fileorg stop` stops it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress

from flows.cli import background, server_use, terminal

DRAIN_SECONDS = 60.0  # a deadline: a quiet machine sends what is left in well under a second
STARTING = "starting a local Prefect server (it keeps running for later runs: fileorg stop)..."


def drain_prefect(timeout: float = DRAIN_SECONDS) -> None:
    """Send what Prefect still holds for the server (run logs, events: the final states, a
    heartbeat, our progress) before the command ends. Prefect sends them from background
    workers and would otherwise drain them at interpreter exit; against a server that had been
    stopped first, each item was retried against a closed port (seen: 14 minutes after an
    apply had finished, and 'Error logging to API' after a dry run with -v)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):  # logs first: sending events logs nothing
        worker.drain_all(timeout=timeout, at_exit=False)


_early: list[Future[background.Server]] = []


def start_early() -> None:
    """Find (or start) the background server in a thread while the caller imports Prefect and
    the flows (~2 s): the first run's server starts meanwhile, on the other core."""
    if os.environ.get("PREFECT_API_URL") or _early:
        return
    found: Future[background.Server] = Future()

    def find() -> None:
        try:
            found.set_result(background.ensure(background.state_dir(), _starting))
        except BaseException as exc:  # raised in the caller, by local_prefect()
            found.set_exception(exc)

    threading.Thread(target=find, name="fileorg-prefect-server", daemon=True).start()
    _early.append(found)


def _starting() -> None:
    terminal.status(STARTING)


@contextmanager
def local_prefect() -> Iterator[None]:
    """PREFECT_API_URL for the duration: the user's server if set, else the background one."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    if _early:
        found = _early.pop()
        if not found.done():  # a server is starting: a first run, which mostly waits for it
            _start_runner()  # so the runner imports now, on the idle core, ready for the next
        server = found.result()
    else:
        server = background.ensure(background.state_dir(), _starting)
    if terminal.verbose():
        line = f"Prefect server {server.ui_url} (pid {server.pid}, home {server.home})\n"
        sys.stderr.write(line)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect read its settings when it was imported: tell it here, and children by env.
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        if not terminal.INTERRUPTED.is_set():  # after a Ctrl-C the exit is due (the server stays)
            drain_prefect()
            server_use.done(background.state_dir())  # after a Ctrl-C: with the process
            _start_runner()


def _start_runner() -> None:
    """A warm runner for the next run, when this one could have gone warm (flows/cli/warm.py):
    it imports Prefect and the flows while this process runs or exits (none is started twice:
    one of the same fingerprint, starting or ready, is kept)."""
    from flows.cli import warm, warm_state

    if warm.eligible_env is not None:
        with suppress(OSError):
            warm_state.start(background.state_dir(), warm.eligible_env)
