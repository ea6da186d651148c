"""The local Prefect server that CLI runs share, kept running in the background between them.

The first run that needs Prefect without PREFECT_API_URL starts it; later runs, `fileorg serve`
and `fileorg status` find it; `fileorg stop` stops it. It runs in a session of its own (the
terminal's Ctrl-C and hang-up never reach it), so it outlives every run by construction: an
interrupted run can still record how it ended. It is Prefect's whole server (uvicorn over
Prefect's app) with its UI and its services (schedules), in one process.

Its state is one folder, `prefect-server/` in a local data folder (for a data folder in a
bucket, the user's state folder: `~/.local/state/fileorg/prefect-server`):
- `server.json`: pid, port, token, when it started (written at once, before it answers);
- `home/`: its PREFECT_HOME (its database, prefect.db, and the UI's files);
- `server.log`: what it prints; `history.log`: one line per start, reuse, wait and stop (why,
  where a start was given up on);
- `server.lock`: held while a CLI finds, starts or stops it, so two runs at once start one;
- `in-use.lock`: shared by every run that uses it, from the moment it is found until the run
  has sent Prefect everything; `last-use`: its mtime is when it was last used.

A record counts only while its process is alive, is ours (its environment carries the
record's token: a pid reused by another program has not) and listens on the port itself (not
another program that took the port); a record that fails any of these is replaced. A server
of another Prefect or fileorg version than the running code (after an upgrade) is stopped and
replaced, unless a run still uses it. The server stops itself after an idle period
(flows/cli/prefect_server.py).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from flows.cli import prefect_db, server_use
from flows.cli.records import load_record, save_record
from storage.errors import FileorgError
from storage.processes import environ, pid_alive

START_SECONDS = 180.0  # a deadline, polled: a quiet machine answers in ~3 s (more the first time)
STOP_SECONDS = 10.0
TOKEN_VARIABLE = "FILEORG_PREFECT_TOKEN"


class BackgroundServerError(FileorgError):
    """The local Prefect server did not start, or an outdated one is still in use."""


@dataclass(frozen=True)
class Server:
    pid: int
    port: int
    token: str
    started: float  # seconds since the epoch
    home: str  # its PREFECT_HOME
    # What it runs; "" in a record written before versions were recorded (so: outdated).
    prefect_version: str = ""
    fileorg_version: str = ""
    idle_minutes: float = 0.0  # it stops itself after this long unused (0: never)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def versions(self) -> str:
        return _said(self.prefect_version, self.fileorg_version)


def _said(prefect: str, fileorg: str) -> str:
    return f"Prefect {prefect or '?'} and fileorg {fileorg or '?'}"


def running_versions() -> tuple[str, str]:
    """The Prefect and fileorg this process runs (from their distributions: no import)."""
    from importlib.metadata import version

    return version("prefect"), version("fileorg")


def current(server: Server) -> bool:
    """`server` runs the Prefect and fileorg this process runs."""
    return (server.prefect_version, server.fileorg_version) == running_versions()


def state_dir() -> Path:
    """`prefect-server/` of a local data folder; the user's state folder for a bucket's."""
    from storage.locations import DataStore
    from storage.settings import get_settings

    store = DataStore(get_settings().data_url)
    if store.is_local:
        return Path(store.base) / "prefect-server"
    from platformdirs import user_state_path

    return user_state_path("fileorg", appauthor=False) / "prefect-server"


def note(folder: Path, line: str) -> None:
    """One line of history.log (its readers: people, and the tests of concurrent starts)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    with suppress(OSError), (folder / "history.log").open("a") as out:
        out.write(f"{stamp} pid {os.getpid()}: {line}\n")


def try_lock(folder: Path) -> int | None:
    """The state folder's lock, if free now: its descriptor (closing it releases the lock)."""
    fd = os.open(folder / "server.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """The state folder's lock, held by one CLI at a time (released by its exit, however)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "server.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note(folder, "waiting for the lock")
            fcntl.flock(fd, fcntl.LOCK_EX)  # bounded: a holder starting one waits START_SECONDS
        yield
    finally:
        os.close(fd)


def read_record(folder: Path) -> Server | None:
    return load_record(folder / "server.json", Server)


def _write_record(folder: Path, server: Server) -> None:
    save_record(folder / "server.json", server)


def forget(folder: Path) -> None:
    with suppress(FileNotFoundError):
        (folder / "server.json").unlink()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        return pid_alive(pid)
    return state != "Z"


def ours(server: Server, started_here: bool = False) -> bool:
    """The process carries the record's token (where /proc shows it; elsewhere: alive). One
    this process `started_here` (not reaped, so its pid is not reused) counts too while its
    environment is still empty: the kernel shows none from the moment its exec closes our
    descriptors (Popen returns) until the new program's stack is laid out. A record's process
    that reads empty is read again a few seconds (storage.processes.environ): its starter may
    have written the record and ended (a Ctrl-C) moments ago."""
    if not alive(server.pid):
        return False
    try:
        found = environ(server.pid, started_here)
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False  # not ours to read: another user's process
    if started_here and found == b"":
        return True
    return f"{TOKEN_VARIABLE}={server.token}".encode() in found.split(b"\0")


def listening_inodes(port: int) -> set[str] | None:
    """The sockets listening on `port` (None where /proc/net/tcp cannot say)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            return None if table.endswith("tcp") else found
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                found.add(f"socket:[{fields[9]}]")
    return found


def holds_port(pids: set[int], port: int) -> bool:
    """One of `pids` listens on `port` (from /proc; True where /proc cannot say)."""
    inodes = listening_inodes(port)
    if inodes is None:
        return True
    for pid in pids:
        with suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return True
    return False


def healthy(api_url: str) -> bool:
    import urllib.request  # here: it imports ssl and http, a tenth of the CLI's start

    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return int(response.status) == 200
    except (OSError, ValueError):
        return False


def answering(server: Server) -> bool:
    """Ours, listening on its port itself, and healthy."""
    return ours(server) and holds_port({server.pid}, server.port) and healthy(server.api_url)


def find(folder: Path | None = None) -> Server | None:
    """The running background server, if one answers (nothing is started or changed)."""
    server = read_record(folder or state_dir())
    return server if server is not None and answering(server) else None


def share(folder: Path | None = None) -> Server | None:
    """The running server, if it runs this code's versions, in use by this process until it
    ends (`fileorg serve`'s); None when none does (an outdated one is the next run's to
    replace)."""
    folder = folder or state_dir()
    if not folder.exists():
        return None
    with locked(folder):
        server = find(folder)
        if server is None or not current(server):
            return None
        server_use.hold(folder)
        return server


def ensure(
    folder: Path, on_start: Callable[[], None] = lambda: None, idle_minutes: float | None = None
) -> Server:
    """The background server, started if none of this code's versions answers (one at a time:
    the lock), and in use by this process until server_use.done(). `idle_minutes`: a new
    server's (default: the settings')."""
    with locked(folder):
        server = read_record(folder)
        if server is not None and ours(server):
            if not current(server):
                _replace_outdated(folder, server)
            elif (why := _wait_healthy(server)) is None:
                note(folder, f"reused server pid {server.pid} on port {server.port}")
                server_use.hold(folder)
                return server
            else:
                kill(server)  # ours, but dead to requests, or another program holds its port
                note(folder, f"replaced server pid {server.pid} on port {server.port}: {why}")
        forget(folder)
        on_start()
        if idle_minutes is None:
            from storage.settings import get_settings

            idle_minutes = get_settings().server_idle_minutes
        whys: dict[str, None] = {}  # each distinct reason, in order
        for _attempt in range(3):  # a port picked free can be taken before the server binds
            server = _start(folder, idle_minutes)
            if (why := _wait_healthy(server, started_here=True)) is None:
                note(folder, f"started server pid {server.pid} on port {server.port}")
                server_use.hold(folder)
                return server
            # Not left running: a CI run found a server of a failed attempt alive at its end.
            kill(server, started_here=True)
            note(folder, f"gave up on server pid {server.pid} on port {server.port}: {why}")
            forget(folder)
            whys[why] = None
        raise BackgroundServerError(
            f"the local Prefect server did not start in 3 tries: {'; '.join(whys)}; its log: "
            f"{folder / 'server.log'}, each try: {folder / 'history.log'}"
        )


def _replace_outdated(folder: Path, server: Server) -> None:
    """Stop a server of other versions (its database is migrated by the new one at start),
    unless a run still uses it. That run would lose its server midway (its states and logs
    unrecorded, ~75 s of retries) and two servers cannot share one database across a
    migration: the user is told to run again once it has ended, which is what they expect
    after an upgrade in the middle of a run; nothing is waited for behind their back."""
    with server_use.unused(folder) as unused:
        if not unused:
            raise BackgroundServerError(
                f"the local Prefect server (pid {server.pid}) runs {server.versions}, this is "
                f"{_said(*running_versions())}, and a run still uses it: run this again when "
                "that run has ended"
            )
        kill(server)
        note(folder, f"stopped server pid {server.pid}: it runs {server.versions}")


def _wait_healthy(
    server: Server, seconds: float = START_SECONDS, started_here: bool = False
) -> str | None:
    """Wait while it starts: None once it answers on its port itself, else why not (for
    history.log): it ended, it is not ours, another program answers there, or time ran out."""
    deadline = time.monotonic() + seconds
    while ours(server, started_here):
        if healthy(server.api_url):
            if holds_port({server.pid}, server.port):
                return None
            return f"another program answers on port {server.port}"
        if time.monotonic() > deadline:
            return f"no answer in {seconds:.0f} s"
        time.sleep(0.1)
    if not alive(server.pid):
        return "its process ended (its output: server.log)"
    return "its process does not carry the record's token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(port: int, home: Path, token: str) -> dict[str, str]:
    # Not the CLI's own settings (FILEORG_PROFILES may hold secrets): Prefect needs none of them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "FILEORG_"))}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_UI_ENABLED": "true",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",  # the CLI's own CRITICAL is for its terminal
            "PREFECT_LOGGING_LOGGERS_PREFECT_SERVER_LEVEL": "WARNING",
            TOKEN_VARIABLE: token,
            # FILEORG_* is not passed on: the template's place is, found with the CLI's own
            prefect_db.TEMPLATE_VARIABLE: str(prefect_db.template_path(os.environ)),
        }
    )
    env.pop("FILEORG_VERBOSE", None)
    return env


def _start(folder: Path, idle_minutes: float) -> Server:
    """Start the server, detached, and record it at once (a Ctrl-C now leaves it findable)."""
    port, token, home = _free_port(), secrets.token_hex(16), folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "flows.cli.prefect_server", str(folder), str(port)]
    command.append(str(idle_minutes))
    with (folder / "server.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            env=_server_env(port, home, token),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=folder,
            start_new_session=True,  # no terminal's signal reaches it; it outlives us
        )
    prefect, fileorg = running_versions()
    server = Server(
        process.pid, port, token, time.time(), str(home), prefect, fileorg, idle_minutes
    )
    _write_record(folder, server)
    return server


def kill(server: Server, started_here: bool = False) -> None:
    """Stop `server`'s process group: TERM, then KILL after STOP_SECONDS (only if ours). One
    this process `started_here` and has not reaped is ours whatever /proc says of it (its pid
    cannot be reused before the reaping), so it is stopped without the token check."""
    if not started_here and not ours(server):
        return
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
        with suppress(ChildProcessError):
            os.waitpid(server.pid, os.WNOHANG)  # reap it, when we are its parent
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(server.pid, 0)
