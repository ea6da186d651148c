"""The local Prefect server a CLI run uses when PREFECT_API_URL names none.

Prefect would start one itself (its "ephemeral" server), but as a child in our process group:
Ctrl-C in the terminal killed it first, and the interrupted run then spent about 75 s retrying
connections to it. This one is started the same way (uvicorn over Prefect's app, no UI) but in
a session of its own, so that it outlives the Ctrl-C long enough for the run to record how it
ended, and is stopped by us afterwards, always.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

from flows.cli import terminal
from storage.errors import FileorgError

START_SECONDS = 180.0  # a deadline: polled, so a quiet machine waits ~3 s
STOP_SECONDS = 3.0
DRAIN_SECONDS = 60.0  # a deadline: a quiet machine sends what is left in well under a second


class LocalServerError(FileorgError):
    """The local Prefect server did not start."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return int(response.status) == 200
    except (OSError, ValueError):
        return False


def _start(port: int, log: IO[bytes] | int) -> subprocess.Popen[bytes]:
    import prefect

    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent)]
    command += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # the terminal's Ctrl-C reaches us, not it
    )


_running: list[subprocess.Popen[bytes]] = []


def stop_all() -> None:
    """Stop every local server still running (an interrupted command on its way out)."""
    for process in list(_running):
        stop(process, grace=0.5)


def drain_prefect(timeout: float = DRAIN_SECONDS) -> None:
    """Send what Prefect still holds for the server (run logs, events: the final states, a
    heartbeat, our progress) while the server is up. Prefect sends them from background workers
    and would otherwise drain them at interpreter exit, after we stopped the server: each item
    then retried against a closed port (seen: 14 minutes after an apply had finished, and
    'Error logging to API' after a dry run with -v)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):  # logs first: sending events logs nothing
        worker.drain_all(timeout=timeout, at_exit=False)


def stop(process: subprocess.Popen[bytes], grace: float = STOP_SECONDS) -> None:
    with suppress(ValueError):
        _running.remove(process)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def local_prefect() -> Iterator[None]:
    """PREFECT_API_URL for the duration: the user's server if set, else one of our own."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    terminal.status("starting a local Prefect server...")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log: IO[bytes] | int = sys.stderr.buffer if terminal.verbose() else subprocess.DEVNULL
    process = _start(port, log)
    _running.append(process)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not healthy(api_url):
            if process.poll() is not None:
                raise LocalServerError(
                    f"the local Prefect server stopped (exit code {process.returncode}); "
                    "run again with -v to see why"
                )
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"the local Prefect server did not answer in {START_SECONDS:.0f} s"
                )
            time.sleep(0.1)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # Prefect read its settings when it was imported: tell it here, and children by env.
        os.environ["PREFECT_API_URL"] = api_url
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        # After a Ctrl-C Prefect's engine is still reporting the run (and its log worker still
        # sending): the server stays until the exit, which stops it (stop_all).
        if not terminal.INTERRUPTED.is_set():
            drain_prefect()
            stop(process)
