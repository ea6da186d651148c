"""The warm runner: Prefect, the flows and the stages imported once, then one forked child per
CLI run (issue 14: the imports were ~2 s of every run's ~5 s).

`python -m flows.cli.runner FOLDER`, started by a CLI run (flows/cli/warm_state.py) in a session
of its own. One thread, one selector: it accepts a connection on FOLDER/runner.sock from a
process of the same user (SO_PEERCRED), reads one request (argv, environ, cwd, umask, the
stdio encodings) with the client's stdin, stdout and stderr (SCM_RIGHTS), and forks. The child
waits for a go from the parent (sent once the client has heard "started": a run the client did
not hear of never starts, so a client that falls back never runs a command twice), takes the
client's descriptors, environment, cwd and argv, and runs the same main as `fileorg` in its
own process (flows.cli.run_here). The parent relays the client's signals to it, SIGINT when
the client's connection drops (as if its terminal closed), and the child's exit status back.
A child dies with the runner (PR_SET_PDEATHSIG): a killed runner leaves what a killed run
leaves. Nothing forks while a thread or an event loop is alive here: refused instead.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.cli import runner_child, warm_state
from flows.cli.runner_child import LEARNED

# Imported before the first fork: what a run of organize, apply or rollback imports (the rest a
# child imports itself, from the files the fingerprint covers). flows.cli's command modules
# are not among them: the child registers them after it took the client's environment.
PRELOAD = (
    "prefect",
    "prefect.flows",
    "prefect.tasks",
    "prefect.task_runners",
    "prefect.client.orchestration",
    "prefect.events.worker",
    "prefect.logging.handlers",
    "prefect.artifacts",
    "prefect.context",
    "prefect.runtime",
    "prefect.runtime.deployment",
    "prefect.runtime.flow_run",
    "prefect.settings",
    # What a run imported on its first call (learned by the first child, too late for the
    # runner the first run started): the engines, and fastapi's encoder, which a flow's
    # parameters are serialized with (~0.5 s of pydantic models built per run before).
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.engine",
    "prefect.concurrency.v1.context",
    "prefect.utilities.visualization",
    "prefect.telemetry.run_telemetry",
    "prefect._internal.control_listener",
    "fastapi.encoders",
    "flows.organize",
    "flows.apply",
    "flows.runs",
    "tasks.stages",
    "storage.queries",
    "storage.operations",
    "storage.previews",
    "storage.settings",
    "duckdb",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "rich.console",
    "rich.progress",
    "rich.table",
    "rich.tree",
    "typer",
)
FORWARDED = {
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGSTOP,
    signal.SIGCONT,
}
MAX_REQUEST = 1 << 20


class _CurrentStderr:
    """Prefect's console handler keeps the stream it was made with: this one writes to
    whatever sys.stderr is when it writes (in a child: the client's terminal)."""

    def __getattr__(self, name: str) -> Any:
        target = sys.stderr if sys.stderr is not self else sys.__stderr__
        return getattr(target, name)


def _preload(folder: Path | None = None) -> None:
    import importlib

    from flows.cli import _quiet_prefect

    _quiet_prefect(False)  # the environment main() gives Prefect before it imports it
    learned: list[str] = []
    if folder is not None:
        with suppress(OSError):
            learned = (folder / LEARNED).read_text().split()
    real, sys.stderr = sys.stderr, _CurrentStderr()
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        for name in learned:
            with suppress(Exception):  # a module of older code, gone since: the child's loss
                importlib.import_module(name)
        from flows import prefect_costs

        with suppress(OSError):  # no CA file: each child's first client says so
            prefect_costs.warm()  # the TLS context every child's Prefect clients share
    finally:
        sys.stderr = real


def fork_safe() -> str | None:
    """Why forking now would be unsafe (None: it is safe)."""
    import asyncio

    if threading.active_count() != 1:
        return f"{threading.active_count()} threads alive"
    if asyncio.events._get_running_loop() is not None:
        return "an event loop is running"
    return None


@dataclass
class Run:
    conn: socket.socket
    client: int  # the client's pid
    pid: int = 0  # the child's
    started: float = field(default_factory=time.monotonic)
    connected: bool = True


@dataclass
class Runner:
    folder: Path
    fingerprint: str
    token: str
    listener: socket.socket
    selector: selectors.BaseSelector
    wakeup: int
    pending: dict[socket.socket, int] = field(default_factory=dict)  # conn: client pid
    runs: dict[int, Run] = field(default_factory=dict)  # child pid: run
    stopping: bool = False

    def serve(self) -> None:
        while not (self.stopping and not self.runs):
            events = self.selector.select(timeout=60)
            record = warm_state.read(self.folder)
            if record is None or record.pid != os.getpid():
                self._stop()  # stopped or replaced (or the data folder removed)
            for key, _ in events:
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fd == self.wakeup:
                    self._signals()
                else:
                    self._message(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        pid, uid, _gid = struct.unpack(
            "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        )
        record = warm_state.read(self.folder)
        if uid != os.getuid() or record is None or record.pid != os.getpid():
            warm_state.note(self.folder, f"refused a connection from pid {pid} (uid {uid})")
            conn.close()
            if record is None or record.pid != os.getpid():
                self._stop()  # replaced, or stopped while we were busy
            return
        self.pending[conn] = pid
        self.selector.register(conn, selectors.EVENT_READ)

    def _message(self, conn: socket.socket) -> None:
        if conn in self.pending:
            self._request(conn, self.pending.pop(conn))
            return
        run = next(r for r in self.runs.values() if r.conn is conn)
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:  # the client is gone: as if its terminal closed
            self.selector.unregister(conn)
            run.connected = False
            with suppress(ProcessLookupError):
                os.kill(run.pid, signal.SIGINT)
            return
        with suppress(ValueError, KeyError, ProcessLookupError):
            signum = int(json.loads(data)["signal"])
            if signum in FORWARDED:
                os.kill(run.pid, signum)

    def _request(self, conn: socket.socket, client: int) -> None:
        fds: list[int] = []
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST, 4)
            request = json.loads(data)
            refused = self._refusal(request, fds)
        except (OSError, ValueError) as exc:
            request, refused = {}, f"unreadable request: {exc}"
        if refused:
            warm_state.note(self.folder, f"refused client pid {client}: {refused}")
            with suppress(OSError):
                conn.send(json.dumps({"refused": refused}).encode())
            self._close(conn, fds)
            return
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            runner_child.run(self._close_all, self.folder, request, fds, go_read)
        os.close(go_read)
        for fd in fds:
            os.close(fd)
        try:
            conn.send(json.dumps({"started": pid}).encode())
            os.write(go_write, b"g")
        except OSError:
            os.kill(pid, signal.SIGKILL)  # it never started: the client runs it itself
        finally:
            os.close(go_write)
        self.runs[pid] = Run(conn, client, pid)
        argv = " ".join(request["argv"][1:3])
        warm_state.note(self.folder, f"child pid {pid} runs {argv} for client pid {client}")

    def _refusal(self, request: dict[str, Any], fds: list[int]) -> str | None:
        if len(fds) != 4:
            return "no terminal descriptors"
        if request.get("token") != self.token:
            return "another runner's token"
        if request.get("fingerprint") != self.fingerprint:
            return "other code or settings"
        if self.stopping:
            return "stopping"
        return fork_safe()

    def _close(self, conn: socket.socket, fds: list[int] = ()) -> None:  # type: ignore[assignment]
        for fd in fds:
            os.close(fd)
        with suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def _signals(self) -> None:
        data = b""
        with suppress(BlockingIOError):
            data = os.read(self.wakeup, 4096)  # the numbers of the signals received
        if signal.SIGTERM in data:  # fileorg stop, or a runner of other code replacing us
            self._stop()
        while self.runs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self._ended(pid, status)

    def _ended(self, pid: int, status: int) -> None:
        run = self.runs.pop(pid, None)
        if run is None:
            return
        if os.WIFSIGNALED(status):
            answer, said = {"signal": os.WTERMSIG(status)}, f"signal {os.WTERMSIG(status)}"
        else:
            answer, said = (
                {"exit": os.waitstatus_to_exitcode(status)},
                f"exit {os.waitstatus_to_exitcode(status)}",
            )
        if run.connected:
            with suppress(OSError):
                run.conn.send(json.dumps(answer).encode())
        self._close(run.conn)
        seconds = time.monotonic() - run.started
        warm_state.note(self.folder, f"child pid {pid} ended: {said} ({seconds:.2f} s)")

    def _close_all(self) -> None:
        """In a child: nothing of the runner's stays open."""
        self.selector.close()
        self.listener.close()
        os.close(self.wakeup)
        for conn in [*self.pending, *(run.conn for run in self.runs.values())]:
            conn.close()

    def _stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            with suppress(KeyError, ValueError):
                self.selector.unregister(self.listener)
            self.listener.close()


def main(argv: list[str]) -> None:
    folder = Path(argv[1])
    code = warm_state.code_digest()
    _preload(folder)
    if warm_state.code_digest() != code:
        warm_state.note(folder, "the code changed while it was imported: not serving")
        return
    unsafe = fork_safe()
    if unsafe:  # a learned module started one: the next runner goes without them
        warm_state.note(folder, f"not serving: {unsafe} after the imports")
        with suppress(FileNotFoundError):
            (folder / LEARNED).unlink()
        return
    env_part = os.environ.get(warm_state.ENV_DIGEST_VARIABLE, "")
    token = os.environ.get(warm_state.TOKEN_VARIABLE, "")
    listener = _listen(folder)
    with warm_state.locked(folder):
        record = warm_state.read(folder)
        if record is None or record.pid != os.getpid():
            warm_state.note(folder, "replaced or stopped before it was ready")
            return
        fingerprint = warm_state.fingerprint(code, env_part)
        warm_state.write(
            folder, warm_state.Runner(os.getpid(), token, fingerprint, record.started, True)
        )
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_write)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: None)  # the wakeup fd says which
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    warm_state.note(folder, f"ready ({len(sys.modules)} modules imported)")
    try:
        Runner(folder, fingerprint, token, listener, selector, wake_read).serve()
    finally:
        warm_state.forget(folder, os.getpid())
        warm_state.note(folder, "exited")


def _listen(folder: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    address, fd = warm_state.socket_path(folder)
    with suppress(FileNotFoundError):
        (folder / "runner.sock").unlink()  # a dead runner's: the record no longer names it
    old = os.umask(0o177)
    try:
        listener.bind(address)
    finally:
        os.umask(old)
        if fd is not None:
            os.close(fd)
    os.chmod(folder / "runner.sock", 0o600)
    listener.listen(16)
    return listener


if __name__ == "__main__":
    main(sys.argv)
