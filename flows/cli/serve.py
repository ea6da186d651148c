"""`fileorg serve`: the whole stack on one machine, with embedded defaults.

Children, each in a process group of its own (so that stopping one stops its own children):
1. a Prefect server with its UI (`prefect server start`), unless PREFECT_API_URL is set;
2. a runner serving the deployments (`python -m flows.deployments`), polling often enough that
   a run started through the API is running within about `--poll-seconds` + 1 s;
3. the API (`uvicorn api.main:app`).
Each is started once the one before it is healthy. Ctrl-C or SIGTERM stops them all, the API
first and the Prefect server last; if one of them dies, the others are stopped too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType

import typer

from flows.cli import app
from storage.errors import FileorgError

STARTUP_SECONDS = 120.0
STOP_SECONDS = 15.0
DEPLOYMENTS = ("organize/organize", "apply-plan/apply-plan", "rollback/rollback")


class ServeError(FileorgError):
    """A part of the stack did not start or stopped on its own."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


@dataclass
class Stack:
    children: list[Child] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        process = subprocess.Popen(command, env=env, start_new_session=True)
        child = Child(name, process)
        self.children.append(child)
        return child

    def check(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise ServeError(f"{child.name} stopped (exit code {code})")

    def wait_until(self, what: str, probe: object) -> None:
        assert callable(probe)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not probe():
            self.check()
            if self.stopping.is_set():
                return
            if time.monotonic() > deadline:
                raise ServeError(f"{what} did not become healthy in {STARTUP_SECONDS:.0f} s")
            self.stopping.wait(0.25)

    def stop(self) -> None:
        """Stop every child's process group, newest first: TERM, then KILL after a while."""
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
            try:
                child.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
            _signal_group(child.process, signal.SIGKILL)  # stragglers left in the group


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return None


def prefect_healthy(api_url: str) -> bool:
    answer = _get(f"{api_url}/health")
    return answer is not None and answer[0] == 200


def api_healthy(base_url: str) -> bool:
    answer = _get(f"{base_url}/health")
    return answer is not None and answer[0] == 200


def deployments_served(api_url: str, since: datetime) -> bool:
    """The runner has (re)registered every deployment since we started it."""
    for name in DEPLOYMENTS:
        answer = _get(f"{api_url}/deployments/name/{name}")
        if answer is None or answer[0] != 200:
            return False
        updated = datetime.fromisoformat(json.loads(answer[1])["updated"])
        if updated < since:
            return False
    return True


def _ui_url(api_url: str) -> str:
    return api_url.rstrip("/").removesuffix("/api")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address the API and Prefect server listen on."),
    port: int = typer.Option(8000, help="The API's port."),
    prefect_port: int = typer.Option(
        4200, help="The Prefect server's port (unless PREFECT_API_URL is set)."
    ),
    poll_seconds: float = typer.Option(
        1.0, min=0.2, help="How often the runner asks Prefect for runs to start."
    ),
) -> None:
    """Run the Prefect server and UI, a runner for the deployments and the API; Ctrl-C stops all."""
    stack = Stack()
    env = dict(os.environ)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stack.stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _run(stack, env, host, port, prefect_port, poll_seconds)
    finally:
        typer.echo("stopping...", err=True)
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    typer.echo("stopped", err=True)


def _run(
    stack: Stack, env: dict[str, str], host: str, port: int, prefect_port: int, poll: float
) -> None:
    api_url = env.get("PREFECT_API_URL")
    if not api_url:
        api_url = env["PREFECT_API_URL"] = f"http://{host}:{prefect_port}/api"
        prefect = [sys.executable, "-m", "prefect", "server", "start"]
        stack.start("prefect server", [*prefect, "--host", host, "--port", str(prefect_port)], env)
    stack.wait_until(f"the Prefect server at {api_url}", lambda: prefect_healthy(api_url))

    since = datetime.now(UTC) - timedelta(seconds=5)  # the server's clock may differ a little
    runner_env = {**env, "FILEORG_RUNNER_POLL_SECONDS": str(poll)}
    stack.start("runner", [sys.executable, "-m", "flows.deployments"], runner_env)
    base = f"http://{host}:{port}"
    uvicorn = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host]
    stack.start("api", [*uvicorn, "--port", str(port), "--no-access-log"], env)
    stack.wait_until("the runner", lambda: deployments_served(api_url, since))
    stack.wait_until(f"the API at {base}", lambda: api_healthy(base))
    if stack.stopping.is_set():
        return
    typer.echo(
        "\nFile Organizer is running:\n"
        f"  API         {base}/api/v1   (docs: {base}/docs)\n"
        f"  Prefect UI  {_ui_url(api_url)}\n"
        f"  Prefect API {api_url}\n"
        "Press Ctrl-C to stop.\n",
        err=False,
    )
    while not stack.stopping.wait(0.5):
        stack.check()
