"""The warm runner's state and identity: where it lives, which code and settings it serves,
starting and stopping it. Standard library only: the CLI reads it before every organize,
apply and rollback (flows/cli/warm.py), and the runner itself (flows/cli/runner.py).

Its state is `warm/` inside the background server's state folder (`prefect-server/`), a folder
of mode 0700 owned by the user: `runner.json` (pid, token, fingerprint, when it started, ready),
`runner.sock` (mode 0600), `runner.log` and `runner.lock` (held while one CLI starts or stops
it). A runner serves a client only when both computed the same fingerprint: the source files
of the four packages (path, size, mtime, inode), the installed distributions (the mtime of
every folder on sys.path), the interpreter, and every environment variable except a few that
only describe the terminal (VOLATILE; the child applies those itself), with Prefect's profile
and logging files. Anything else that differs means another runner: old code is never run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from flows.cli.records import load_record, save_record
from storage.processes import environ

TOKEN_VARIABLE = "FILEORG_RUNNER_TOKEN"
ENV_DIGEST_VARIABLE = "FILEORG_RUNNER_ENV"
PACKAGES = ("api", "flows", "tasks", "storage")
ROOT = Path(__file__).resolve().parents[2]
STOP_SECONDS = 10.0
# What only describes the terminal or the shell: read at call time (rich's Console is made at
# its first use in the child; the child calls time.tzset() after taking the environment), so a
# runner started from one terminal serves another.
VOLATILE = frozenset(
    {
        "_",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "TERM",
        "COLORTERM",
        "COLUMNS",
        "LINES",
        "NO_COLOR",
        "FORCE_COLOR",
        "TZ",
        "DISPLAY",
        "WINDOWID",
        "TMUX",
        "TMUX_PANE",
        "STY",
        "WINDOW",
        "GPG_TTY",
        "SSH_TTY",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "TERM_PROGRAM",
        "TERM_PROGRAM_VERSION",
        "TERM_SESSION_ID",
        "VTE_VERSION",
        "XDG_SESSION_ID",
        "XDG_VTNR",
    }
)
# The runners this process started, until it reaps them: their pids are not reused meanwhile.
_started: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Runner:
    pid: int
    token: str
    fingerprint: str
    started: float  # seconds since the epoch
    ready: bool  # listening on runner.sock (False: still importing)


def warm_dir(state: Path) -> Path:
    return state / "warm"


def state_dir(env: Mapping[str, str]) -> Path:
    """background.state_dir() without importing the settings (pydantic): the CLI asks it
    before every run. A wrong answer only misses a runner (the fingerprint holds FILEORG_*)."""
    url = env.get("FILEORG_DATA_URL", "")
    if "://" in url and not url.startswith("file://"):
        from platformdirs import user_state_path

        return user_state_path("fileorg", appauthor=False) / "prefect-server"
    if not url:
        from platformdirs import user_data_dir

        url = user_data_dir("fileorg", appauthor=False)
    local = os.path.abspath(os.path.expanduser(url.removeprefix("file://")))
    return Path(local.rstrip("/") or "/") / "prefect-server"


def private_dir(folder: Path, create: bool) -> bool:
    """`folder` is a directory of ours that nobody else may enter (created so if asked)."""
    if create:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def _stat(path: str | Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def code_digest() -> str:
    """The source files of the packages, the installed distributions and the interpreter."""
    digest = hashlib.sha256(f"{sys.executable}\0{sys.version}\0".encode())
    for package in PACKAGES:
        for folder, dirs, files in os.walk(ROOT / package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    digest.update(f"{path}\0{_stat(path)}\0".encode())
    # pip and uv add and remove dist-info folders: a folder's mtime says one was installed.
    # sys.path[0] is the script's folder or the runner's cwd: the rest is the same for both.
    for entry in [str(ROOT / "pyproject.toml"), *sys.path[1:]]:
        digest.update(f"{entry}\0{_stat(entry or '.')}\0".encode())
    return digest.hexdigest()


def env_digest(env: Mapping[str, str]) -> str:
    """The environment but VOLATILE, and the files Prefect reads its profile and logging from."""
    digest = hashlib.sha256()
    for key in sorted(env):
        if key not in VOLATILE and not key.startswith("FILEORG_RUNNER_"):
            digest.update(f"{key}\0{env[key]}\0".encode(errors="surrogateescape"))
    home = _expand(env.get("PREFECT_HOME") or "~/.prefect", env)
    for path in (
        env.get("PREFECT_PROFILES_PATH") or os.path.join(home, "profiles.toml"),
        env.get("PREFECT_LOGGING_SETTINGS_PATH") or os.path.join(home, "logging.yml"),
    ):
        digest.update(f"{path}\0{_stat(_expand(path, env))}\0".encode())
    return digest.hexdigest()


def _expand(path: str, env: Mapping[str, str]) -> str:
    """`~` as the process of `env` reads it (not necessarily this one: a runner's starter)."""
    if path == "~" or path.startswith("~/"):
        return env.get("HOME", os.path.expanduser("~")) + path[1:]
    return os.path.expanduser(path)


def fingerprint(code: str, env: str) -> str:
    return hashlib.sha256(f"{code}\0{env}".encode()).hexdigest()


def read(folder: Path) -> Runner | None:
    return load_record(folder / "runner.json", Runner)


def write(folder: Path, runner: Runner) -> None:
    save_record(folder / "runner.json", runner)


def forget(folder: Path, pid: int) -> None:
    """Remove the record and the socket, if the record still names `pid`."""
    record = read(folder)
    if record is not None and record.pid == pid:
        for name in ("runner.json", "runner.sock"):
            with suppress(FileNotFoundError):
                (folder / name).unlink()


def note(folder: Path, line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    with suppress(OSError), (folder / "runner.log").open("a") as out:
        out.write(f"{stamp} pid {os.getpid()}: {line}\n")


def ours(runner: Runner) -> bool:
    """Alive, and carrying the record's token (a reused pid does not). Its environment reads
    empty until its exec has laid out its stack: one this process started and has not reaped
    counts then; a record's is read again a few seconds (storage.processes.environ), where it
    was once taken for another's, and stop() forgot it, leaving it running."""
    process = _started.get(runner.pid)
    started_here = process is not None and process.returncode is None
    try:
        found = environ(runner.pid, started_here)
        state = Path(f"/proc/{runner.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        return False
    token = f"{TOKEN_VARIABLE}={runner.token}".encode()
    return (started_here and found == b"") or token in found.split(b"\0")


def _reap(pid: int) -> None:
    """Reap `pid` if it ended and this process is its parent (through its Popen, if any)."""
    process = _started.get(pid)
    if process is not None:
        if process.poll() is not None:
            del _started[pid]
        return
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def socket_path(folder: Path) -> tuple[str, int | None]:
    """runner.sock as an address: through /proc/self/fd when the path is too long for one
    (108 bytes); the descriptor (to close) with it."""
    path = str(folder / "runner.sock")
    if len(path.encode()) < 100:
        return path, None
    fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/runner.sock", fd


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / "runner.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # bounded: holders only start or signal a process
        yield
    finally:
        os.close(fd)


def start(state: Path, env: Mapping[str, str]) -> Runner | None:
    """Start a runner for a client of `env` (the environment the CLI started with), unless
    one with the same fingerprint runs or is starting; a runner of other code is stopped."""
    folder = warm_dir(state)
    if not private_dir(folder, create=True):
        return None
    env_part = env_digest(env)
    expected = fingerprint(code_digest(), env_part)
    with locked(folder):
        record = read(folder)
        if record is not None and ours(record):
            if record.fingerprint == expected:
                return record
            _terminate(folder, record, "other code or settings")
        token = secrets.token_hex(16)
        child_env = {k: v for k, v in env.items() if not k.startswith("FILEORG_")}
        child_env.update({TOKEN_VARIABLE: token, ENV_DIGEST_VARIABLE: env_part})
        with (folder / "runner.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flows.cli.runner", str(folder)],
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=folder,
                start_new_session=True,  # no terminal's signal reaches it; it outlives us
            )
        _started[process.pid] = process
        runner = Runner(process.pid, token, expected, time.time(), ready=False)
        write(folder, runner)
        note(folder, f"started runner pid {process.pid}")
        return runner


def _terminate(folder: Path, runner: Runner, why: str) -> None:
    """SIGTERM: it stops listening at once and exits when the runs it serves have ended."""
    with suppress(ProcessLookupError, PermissionError):
        os.kill(runner.pid, signal.SIGTERM)
    note(folder, f"stopped runner pid {runner.pid} ({why})")
    forget(folder, runner.pid)


def stop(state: Path) -> Runner | None:
    """Stop the runner; the one stopped, or None when none ran. Waits (STOP_SECONDS) for it
    to exit unless it still serves a run, which it finishes first."""
    folder = warm_dir(state)
    if not private_dir(folder, create=False):
        return None
    with locked(folder):
        record = read(folder)
        if record is None or not ours(record):
            with suppress(FileNotFoundError):
                (folder / "runner.json").unlink()
            return None
        _terminate(folder, record, "fileorg stop")
    deadline = time.monotonic() + STOP_SECONDS
    while ours(record) and time.monotonic() < deadline:
        _reap(record.pid)  # when we are its parent
        time.sleep(0.05)
    _reap(record.pid)
    return record


def find(state: Path) -> Runner | None:
    folder = warm_dir(state)
    if not private_dir(folder, create=False):
        return None
    record = read(folder)
    return record if record is not None and ours(record) else None
