"""A run handed to the warm runner (flows/cli/runner.py) instead of importing Prefect here.

`fileorg organize/apply/rollback` first looks for a ready runner of the same fingerprint
(flows/cli/warm_state.py) and, if there is one, sends it argv, the environment, the umask and
the stdio encodings with its stdin, stdout, stderr and cwd as descriptors (SCM_RIGHTS): the
runner's child prints and asks on this terminal, as this process would. This process then only
relays signals (Ctrl-C reaches its process group, not the child) and exits as the child did.

Anything doubtful runs the command here, as before: no ready runner, another fingerprint, -v,
PREFECT_API_URL (the user's server), a Prefect settings file in the cwd (Prefect reads .env,
prefect.toml and pyproject.toml from it), FILEORG_WARM=0, or any error before the runner said
the child started. Only after that is the run the child's. When a run here could have gone
warm, a runner is started for the next one once it ends (flows/cli/local_prefect.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Any

from flows.cli import warm_state

COMMANDS = ("organize", "apply", "rollback")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
RUNNER_ENDED = (
    "error: the fileorg runner ended during the run (killed?): its run ended as a killed run "
    "does (see fileorg operations)"
)

# The environment as the command found it (main() adds Prefect's quiet defaults to it), when
# this run could have gone warm: what the runner started after it must serve.
eligible_env: dict[str, str] | None = None


def _command(argv: list[str]) -> str | None:
    end = argv.index("--") if "--" in argv else len(argv)
    words = argv[1:end]
    if {"-v", "--verbose", "--help", "--version"} & set(words):
        return None
    command = next((a for a in words if not a.startswith("-")), None)
    return command if command in COMMANDS else None


def _settings_in_cwd() -> bool:
    """A file Prefect would read its settings from in the cwd (the runner read them in its own)."""
    if os.path.exists(".env") or os.path.exists("prefect.toml"):
        return True
    try:
        with open("pyproject.toml", "rb") as project:
            data = project.read()
    except OSError:
        return False
    return b"tool.prefect" in data or (b"[tool]" in data and b"prefect" in data)


def eligible(argv: list[str]) -> bool:
    env = os.environ
    if env.get("FILEORG_WARM") == "0" or env.get("PREFECT_API_URL"):
        return False
    if env.get("FILEORG_VERBOSE") == "1" or env.get("FILEORG_DEBUG"):
        return False
    if not sys.platform.startswith("linux") or _command(argv) is None:
        return False
    if any(stream is None for stream in (sys.stdin, sys.stdout, sys.stderr)):
        return False
    try:
        return not _settings_in_cwd()
    except OSError:
        return False


def dispatch(argv: list[str]) -> int | None:
    """Run the command in the warm runner: its exit code, or None to run it here."""
    global eligible_env
    if not eligible(argv):
        return None
    eligible_env = dict(os.environ)
    state = warm_state.state_dir(os.environ)
    folder = warm_state.warm_dir(state)
    record = warm_state.read(folder)
    if record is None or not record.ready or not warm_state.private_dir(folder, create=False):
        return None
    env_part = warm_state.env_digest(os.environ)
    if record.fingerprint != warm_state.fingerprint(warm_state.code_digest(), env_part):
        return None
    try:
        conn = _connect(folder, record.pid)
    except OSError:
        return None
    with conn:
        return _handed(conn, argv, record)


def _connect(folder: Path, pid: int) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    address, fd = warm_state.socket_path(folder)
    try:
        conn.connect(address)
    except OSError:
        conn.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    peer, uid, _gid = struct.unpack(
        "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    )
    if uid != os.getuid() or peer != pid:  # not the runner the record names
        conn.close()
        raise ConnectionRefusedError(f"peer pid {peer} uid {uid}")
    return conn


def _request(argv: list[str], record: warm_state.Runner) -> bytes:
    umask = os.umask(0o077)
    os.umask(umask)
    streams = (sys.stdin, sys.stdout, sys.stderr)
    return json.dumps(
        {
            "token": record.token,
            "fingerprint": record.fingerprint,
            "argv": argv,
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "umask": umask,
            "stdio": [[s.encoding, s.errors] for s in streams],
        }
    ).encode()


def _handed(conn: socket.socket, argv: list[str], record: warm_state.Runner) -> int | None:
    """Send the request; relay signals until the runner says how the child ended."""
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        with suppress(OSError):
            conn.send(json.dumps({"signal": signum}).encode())

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        socket.send_fds(conn, [_request(argv, record)], [0, 1, 2, cwd])
    except OSError:
        _restore(previous)
        return None
    finally:
        os.close(cwd)
    started = False
    while True:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            if started:
                print(RUNNER_ENDED, file=sys.stderr)
                return 1
            _restore(previous)  # no child ever ran: the command runs here
            return _interrupted_before(received)
        answer = json.loads(data)
        if "started" in answer:
            started = True
        elif "refused" in answer:
            _restore(previous)
            return _interrupted_before(received)
        elif "signal" in answer:
            _die_of(int(answer["signal"]))
        elif "exit" in answer:
            return int(answer["exit"])


def _restore(previous: dict[signal.Signals, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _interrupted_before(received: list[int]) -> int | None:
    """A signal that came before any child started: what the command here would have done."""
    if not received:
        return None
    if received[0] == signal.SIGINT:
        print("interrupted: nothing was changed", file=sys.stderr)
        return 130
    _die_of(received[0])
    return None


def _die_of(signum: int) -> None:
    """End as the child ended: of the same signal (a shell then says so, as for a run here)."""
    sys.stdout.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)
