"""`fileorg serve`: the whole stack on one machine, with embedded defaults.

Children, each in a process group of its own (so that stopping one stops its own children):
1. a Prefect server with its UI (`prefect server start`), unless PREFECT_API_URL is set or the
   CLI's local Prefect server runs in the background (`fileorg status`): serve then uses that
   one (and leaves it running when it stops), rather than a second server and database;
2. a runner serving the deployments (`python -m flows.deployments`): it starts a run as the
   Prefect server announces it (flows.run_wake), and polls every `--poll-seconds` for what
   the announcements miss; each run is a fork of a process that imported the flows once
   (flows.warm_starts);
3. the API (`uvicorn api.main:app`).
Each is started once the one before it is healthy. Ctrl-C, SIGTERM or SIGHUP (the terminal
closed) stops them all, the API first and the Prefect server last, even when our output goes
to a pipe that is gone (`fileorg serve | tee log`); a second signal kills them at once; if one
of them dies, the others are stopped too; if serve itself is killed, the kernel stops them
(PR_SET_PDEATHSIG). Children never read the terminal (no Prefect prompt can reach the user)
and, unless -v, write to log files instead of it. A port already taken is named before
anything starts, and a health check counts only if one of our children holds the port.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO

import typer

from flows.cli import app, terminal
from storage.errors import FileorgError, UserError

STARTUP_SECONDS = 300.0  # a deadline (polled): a child that dies is noticed at once
STOP_SECONDS = 15.0
DEPLOYMENTS = ("organize/organize", "apply-plan/apply-plan", "rollback/rollback")


class ServeError(FileorgError):
    """A part of the stack did not start or stopped on its own."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when serve dies, however it dies (Linux)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Stack:
    log_dir: Path | None  # None: children write to our terminal (-v)
    children: list[Child] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    killing: threading.Event = field(default_factory=threading.Event)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        log: IO[bytes] | None = None
        if self.log_dir is not None:
            log = (self.log_dir / f"{name.replace(' ', '-')}.log").open("ab")
        with log or open(os.devnull, "ab") as out:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,  # nothing a child asks can reach the user
                stdout=out if log else None,
                stderr=out if log else None,
                start_new_session=True,  # the terminal's signals come to us; we stop them
                preexec_fn=_die_with_parent,
            )
        child = Child(name, process)
        self.children.append(child)
        return child

    def check(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                where = ""
                if self.log_dir is not None:
                    where = f"; its log: {self.log_dir / child.name.replace(' ', '-')}.log"
                raise ServeError(f"{child.name} stopped (exit code {code}){where}")

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
        """Stop every child's process group, newest first: TERM, then KILL after a while (at
        once after a second signal)."""
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while child.process.poll() is None and time.monotonic() < deadline:
                if self.killing.wait(0.1):
                    break
            _signal_group(child.process, signal.SIGKILL)  # it, if still there, and stragglers
            child.process.wait()

    def holds_port(self, port: int) -> bool:
        """One of our children (or theirs) listens on `port` (from /proc; True elsewhere)."""
        from flows.cli.background import holds_port

        return holds_port(_descendants({c.process.pid for c in self.children}), port)


def _descendants(roots: set[int]) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = set(roots)
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def check_port_free(host: str, port: int, what: str, option: str) -> None:
    """Refuse a port something else listens on, naming it, before anything starts."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} ({what}) is already in use on {host}: stop what listens there "
                f"(another fileorg serve?) or choose another port with {option}"
            ) from None
        raise UserError(f"cannot listen on {host}:{port} ({what}): {exc.strerror}") from None


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _prefect_auth() -> str | None:
    """Prefect's basic-auth string for our own requests to its API, when it has one."""
    return os.environ.get("PREFECT_API_AUTH_STRING") or os.environ.get(
        "PREFECT_SERVER_API_AUTH_STRING"
    )


def _get(url: str, auth: str | None = None) -> tuple[int, bytes] | None:
    import urllib.error  # here: urllib.request imports ssl and http, a tenth of the CLI's start
    import urllib.request

    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
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
        answer = _get(f"{api_url}/deployments/name/{name}", _prefect_auth())
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
    host: str = typer.Option("127.0.0.1", help="Address the API listens on."),
    port: int = typer.Option(8000, help="The API's port."),
    prefect_host: str = typer.Option(
        "127.0.0.1",
        help="Address the Prefect server listens on: loopback unless you say otherwise, and "
        "then only with PREFECT_SERVER_API_AUTH_STRING set (docs/security.md).",
    ),
    prefect_port: int = typer.Option(
        4200, help="The Prefect server's port (unless PREFECT_API_URL is set)."
    ),
    poll_seconds: float = typer.Option(
        0.5,
        min=0.2,
        help="How often the runner asks Prefect for runs to start (and when told of one).",
    ),
) -> None:
    """Run the Prefect server and UI, a runner for the deployments and the API; Ctrl-C stops all."""
    check_port_free(host, port, "the API", "--port")
    shared = None
    if not os.environ.get("PREFECT_API_URL"):
        from flows.cli import background

        # The CLI runs' background server: one server, not two (in use while serve runs).
        shared = background.share()
    if shared is not None:
        os.environ["PREFECT_API_URL"] = shared.api_url  # as if the user had named it
        _say(
            f"using the local Prefect server at {shared.ui_url} (pid {shared.pid}, "
            "fileorg status): it keeps running when serve stops"
        )
    elif not os.environ.get("PREFECT_API_URL"):
        check_prefect_host(prefect_host, os.environ)
        check_port_free(prefect_host, prefect_port, "the Prefect server", "--prefect-port")
    from platformdirs import user_log_path

    log_dir = None if terminal.verbose() else user_log_path("fileorg") / "serve"
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(log_dir)
    env = dict(os.environ)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env["PREFECT_CLI_PROMPT"] = "false"

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stack.stopping.is_set():
            stack.killing.set()  # a second signal: no more waiting
        stack.stopping.set()

    stopping_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in stopping_signals}
    try:
        _run(stack, env, (host, port), (prefect_host, prefect_port), poll_seconds)
    finally:
        _say("stopping...")
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _say("stopped")


def _say(text: str, err: bool = True) -> None:
    """Print, unless the reader is gone (a pipe whose `tee` got the same Ctrl-C)."""
    with suppress(OSError, ValueError):
        typer.echo(text, err=err)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_prefect_host(prefect_host: str, env: Mapping[str, str]) -> None:
    """The Prefect API has no login of its own: off loopback only behind its basic auth."""
    if prefect_host in LOOPBACK or env.get("PREFECT_SERVER_API_AUTH_STRING"):
        return
    raise UserError(
        f"the Prefect server would listen on {prefect_host} without a login: set "
        "PREFECT_SERVER_API_AUTH_STRING (user:password) first, or leave --prefect-host alone"
    )


def prefect_server(
    prefect_host: str, prefect_port: int, env: dict[str, str]
) -> tuple[list[str], str]:
    """The command that starts our Prefect server, and the URL its clients use. The clients
    (runner, API) log in with the server's own auth string when one is set."""
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", prefect_host, "--port", str(prefect_port)]
    if env.get("PREFECT_SERVER_API_AUTH_STRING"):
        env.setdefault("PREFECT_API_AUTH_STRING", env["PREFECT_SERVER_API_AUTH_STRING"])
    reach = "127.0.0.1" if prefect_host in ("0.0.0.0", "::", "") else prefect_host
    reach = f"[{reach}]" if ":" in reach else reach
    return command, f"http://{reach}:{prefect_port}/api"


def _seed(env: dict[str, str]) -> None:
    """A new Prefect home gets the cached migrated database, when there is one (not built
    here: that would hold up this first start by the import of Prefect's server)."""
    from flows.cli import prefect_db

    home = Path(env.get("PREFECT_HOME") or Path(env.get("HOME") or Path.home()) / ".prefect")
    with suppress(OSError):
        prefect_db.seed(home, prefect_db.template_path(env), env)


def _run(
    stack: Stack,
    env: dict[str, str],
    api: tuple[str, int],
    prefect_at: tuple[str, int],
    poll: float,
) -> None:
    (host, port), prefect_port = api, prefect_at[1]
    api_url = env.get("PREFECT_API_URL")
    ours = not api_url
    if not api_url:
        # The server gets no PREFECT_API_URL: with one that differs from its own address,
        # `prefect server start` offers to switch profiles, a menu nobody can answer.
        prefect, url = prefect_server(*prefect_at, env)
        _seed(env)
        stack.start("prefect server", prefect, env)
        api_url = env["PREFECT_API_URL"] = url
    stack.wait_until(f"the Prefect server at {api_url}", lambda: prefect_healthy(api_url))
    if ours and not stack.stopping.is_set() and not stack.holds_port(prefect_port):
        raise ServeError(f"port {prefect_port} is answered by another process, not our server")

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
    if not stack.holds_port(port):
        raise ServeError(f"port {port} is answered by another process, not our API")
    logs = f"  Logs        {stack.log_dir}\n" if stack.log_dir else ""
    _say(
        "\nFile Organizer is running:\n"
        f"  API         {base}/api/v1   (docs: {base}/docs)\n"
        f"  Prefect UI  {_ui_url(api_url)}\n"
        f"  Prefect API {api_url}\n"
        f"{logs}"
        "Press Ctrl-C to stop.\n",
        err=False,
    )
    while not stack.stopping.wait(0.5):
        stack.check()
