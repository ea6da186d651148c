"""`fileorg serve`: the whole stack from one command, and Ctrl-C, SIGTERM or a closed terminal
stops all of it; in a real terminal (a pty) and under a pipe, with signals delivered for real."""

from __future__ import annotations

import os
import pty
import select
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.api.stack import free_port
from tests.flows.cli_helpers import port_free
from tests.polling import until

FILEORG = Path(sys.executable).with_name("fileorg")
DEADLINE = 300.0  # a deadline, polled: six suites on two cores made 120 s too short
READY = "File Organizer is running"


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (children first found by their parent)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(what: str, probe: Callable[[], Any], log: Path, every: float = 0.25) -> Any:
    """`until` within DEADLINE, showing the tail of `log` if it times out."""

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    return until(probe, DEADLINE, what, every=every, detail=tail)


API_HOST = "127.0.0.2"
# Each serve starts a Prefect server in a new home: seeded with the migrated database.
pytestmark = pytest.mark.usefixtures("prefect_template")


def _serve_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        HOME=str(tmp_path / "home"),  # the log folder, ~/.local/state/fileorg
        PREFECT_HOME=str(tmp_path / "prefect"),
        FILEORG_SECRET_KEY="k" * 64,
        FILEORG_ENVIRONMENT="test",
        FILEORG_ARGON2_TIME_COST="1",
        FILEORG_ARGON2_MEMORY_KIB="256",
    )
    return env


def _serve_command(api_port: int, prefect_port: int) -> list[str]:
    command = [str(FILEORG), "serve", "--port", str(api_port)]
    return [*command, "--prefect-port", str(prefect_port), "--poll-seconds", "0.5"]


def _gone(pids: set[int], log: Path) -> None:
    """Every process of `pids` has exited, within the deadline."""
    _until("every child to stop", lambda: not any(map(_alive, pids)), log)


@pytest.fixture
def served(tmp_path: Path, data_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    api_port, prefect_port = free_port(), free_port()
    env = _serve_env(tmp_path)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # The API on another loopback address: `--host` is the API's alone (issue 12 #4)
        command = [*_serve_command(api_port, prefect_port), "--host", API_HOST]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        try:
            _until("serve to be ready", lambda: READY in log.read_text(), log)
            yield process, api_port, prefect_port
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_serve_runs_the_stack_and_ctrl_c_stops_every_child(
    served: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path
) -> None:
    process, api_port, prefect_port = served
    log = tmp_path / "serve.log"
    api = httpx.Client(base_url=f"http://{API_HOST}:{api_port}", timeout=30)
    ui = httpx.get(f"http://127.0.0.1:{prefect_port}/", timeout=30)
    assert ui.status_code == 200
    assert "<html" in ui.text.lower()
    with pytest.raises(httpx.ConnectError):  # Prefect stays on 127.0.0.1, not on --host
        httpx.get(f"http://{API_HOST}:{prefect_port}/api/health", timeout=5)
    # Prefect's events WebSocket takes no login even behind its server auth (PrefectHQ/prefect
    # #17687): it answers on loopback, and nowhere else.
    with connect(f"ws://127.0.0.1:{prefect_port}/api/events/in", open_timeout=30):
        pass
    with pytest.raises(OSError):
        connect(f"ws://{API_HOST}:{prefect_port}/api/events/in", open_timeout=5)
    assert api.get("/health").status_code == 200
    assert api.get("/api/v1/status").json()["status"] == "ready"
    assert f"http://127.0.0.1:{prefect_port}" in log.read_text()

    root = tmp_path / "tree"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "notes.txt").write_text("a note\n")
    body = {"email": "a@example.org", "username": "admin", "password": "correct horse battery"}
    token = api.post("/api/v1/auth/signup", json=body).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = api.get("/api/v1/auth/me", headers=headers).json()
    api.post(f"/api/v1/admin/users/{me['id']}/roots", json={"root": str(root)}, headers=headers)
    started = api.post("/api/v1/operations", json={"root_path": str(root)}, headers=headers)
    assert started.status_code == 202, started.text
    path = f"/api/v1/operations/{started.json()['operation_id']}"

    def finished() -> dict[str, Any] | None:
        shown: dict[str, Any] = api.get(path, headers=headers).json()
        return shown if shown["status"] in ("completed", "failed", "cancelled") else None

    assert _until("the operation", finished, log)["status"] == "completed"
    children = _descendants(process.pid)
    assert len(children) >= 3  # the Prefect server, the runner, the API (and their children)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert sorted(pid for pid in children if _alive(pid)) == []


def _read_pty(fd: int, into: Path) -> bool:
    """Append what the terminal shows to `into`; False once the terminal is gone."""
    ready, _, _ = select.select([fd], [], [], 0.25)
    if not ready:
        return True
    try:
        data = os.read(fd, 65536)
    except OSError:
        return False
    with into.open("ab") as out:
        out.write(data)
    return bool(data)


def test_serve_in_a_terminal_asks_nothing_refuses_busy_ports_and_stops_on_hangup(
    tmp_path: Path, data_dir: Path
) -> None:
    """In a pty, with a fresh Prefect home (whose profile has no PREFECT_API_URL: Prefect's
    `server start` then offers a profile menu to a terminal): the stack starts with no prompt;
    a second serve on the same ports fails with one line naming the port; closing the terminal
    (SIGHUP from the kernel) stops every child."""
    api_port, prefect_port = free_port(), free_port()
    env = _serve_env(tmp_path)
    screen = tmp_path / "screen.log"
    screen.touch()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        os.execve(str(FILEORG), _serve_command(api_port, prefect_port), {**env, "TERM": "xterm"})
    try:
        _until(  # no pause between polls: _read_pty waits for the terminal
            "serve to be ready in the terminal",
            lambda: _read_pty(fd, screen) and READY in screen.read_text(),
            screen,
            every=0,
        )
        children = _descendants(pid)
        second = subprocess.run(
            _serve_command(api_port, prefect_port), env=env, capture_output=True, timeout=120
        )
        shown = screen.read_text(errors="replace")

        assert "doesn't match" not in shown and "profile" not in shown.lower(), shown
        assert "Check out the dashboard" not in shown  # Prefect's banner: in its log file
        assert "Traceback" not in shown
        assert len(children) >= 3
        assert second.returncode == 2, second.stderr
        assert second.stderr.decode().splitlines() == [
            f"error: port {api_port} (the API) is already in use on 127.0.0.1: stop what listens"
            " there (another fileorg serve?) or choose another port with --port"
        ]
        assert READY.encode() not in second.stdout

        os.close(fd)  # the terminal window closes: the kernel hangs up the session
        fd = -1
        _, status = os.waitpid(pid, 0)
        _gone(children, screen)
        assert os.waitstatus_to_exitcode(status) == 0
        assert port_free(api_port) and port_free(prefect_port)
    finally:
        if fd >= 0:
            os.close(fd)
        with suppress(ChildProcessError, ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_ctrl_c_of_serve_under_a_pipe_stops_every_child(tmp_path: Path, data_dir: Path) -> None:
    """`fileorg serve | tee LOG`, and Ctrl-C: SIGINT to the pipeline's process group, which
    kills tee too, so serve's stdout is a broken pipe while it stops the stack."""
    api_port, prefect_port = free_port(), free_port()
    log = tmp_path / "tee.log"
    pipeline = f"{shlex.join(_serve_command(api_port, prefect_port))} | tee {shlex.quote(str(log))}"
    shell = subprocess.Popen(
        ["bash", "-c", pipeline],
        env=_serve_env(tmp_path),
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a foreground job of its own, as a terminal would run it
    )
    try:
        log.touch()
        _until("serve to be ready", lambda: READY in log.read_text(), log)
        children = _descendants(shell.pid)
        assert len(children) >= 5  # serve, tee, the Prefect server, the runner, the API

        os.killpg(shell.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        shell.wait(timeout=90)
        _gone(children, log)
        assert port_free(api_port) and port_free(prefect_port)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)


def test_prefect_leaves_loopback_only_behind_its_own_login(tmp_path: Path) -> None:
    from flows.cli.serve import check_prefect_host, prefect_server

    refused = subprocess.run(
        [str(FILEORG), "serve", "--host", "0.0.0.0", "--prefect-host", "0.0.0.0"],
        env=_serve_env(tmp_path),
        capture_output=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert b"PREFECT_SERVER_API_AUTH_STRING" in refused.stderr
    assert b"Traceback" not in refused.stderr

    check_prefect_host("0.0.0.0", {"PREFECT_SERVER_API_AUTH_STRING": "admin:pass"})
    env = {"PREFECT_SERVER_API_AUTH_STRING": "admin:pass"}
    command, url = prefect_server("0.0.0.0", 4300, env)
    assert command[-4:] == ["--host", "0.0.0.0", "--port", "4300"]
    assert url == "http://127.0.0.1:4300/api"
    assert env["PREFECT_API_AUTH_STRING"] == "admin:pass"  # the runner and the API log in


def test_serve_uses_the_background_server_and_leaves_it_running(
    tmp_path: Path, data_dir: Path
) -> None:
    """With the CLI's background Prefect server running (fileorg status), serve starts no
    second one: its runner and API use that one, which is still running after serve stops."""
    from flows.cli import background, server_stop

    state = data_dir / "prefect-server"
    api_port, prefect_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    try:
        server = background.ensure(state)  # in the try: stopped even if interrupted starting
        with log.open("wb") as out:
            process = subprocess.Popen(
                _serve_command(api_port, prefect_port),
                env=_serve_env(tmp_path),
                stdout=out,
                stderr=out,
            )
            try:
                _until("serve to be ready", lambda: READY in log.read_text(), log)
                shown = log.read_text()
                children = _descendants(process.pid)
                process.send_signal(signal.SIGINT)
                assert process.wait(timeout=60) == 0
            finally:
                if process.poll() is None:
                    process.kill()
        assert f"using the local Prefect server at {server.ui_url}" in shown
        assert f"Prefect UI  {server.ui_url}" in shown
        assert port_free(prefect_port)  # no server of its own
        assert server.pid not in children
        assert sorted(pid for pid in children if _alive(pid)) == []
        assert background.find(state) == server
    finally:
        server_stop.stop(state)
    assert not _alive(server.pid) and background.find(state) is None
