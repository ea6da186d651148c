"""The local Prefect server CLI runs share (flows/cli/background.py): started by the first run
on embedded defaults, reused by the next, one for two runs started at once, a stale record
replaced, shown by `fileorg status` and stopped by `fileorg stop`. Every test stops what it
started and checks that no server is left running."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from flows.cli import background, server_stop, server_use, warm_state
from flows.cli.records import save_record
from tests.flows.cli_helpers import port_free
from tests.flows.test_serve import _alive
from tests.polling import until

FILEORG = Path(sys.executable).with_name("fileorg")
DEADLINE = 300.0  # a deadline, polled: several suites share two cores


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A home with ten files in Downloads and an environment that configures nothing (no
    PREFECT_API_URL: the session's test server is not used); afterwards `fileorg stop`, and no
    server of this home is left running."""
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    for i in range(10):
        (home / "Downloads" / f"note {i}.txt").write_text(f"note {i % 5}\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FILEORG_", "XDG_"))
    }
    env.update(HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    try:
        yield home, env
    finally:
        state = _state(home)
        record = background.read_record(state)
        subprocess.run([str(FILEORG), "stop"], env=env, capture_output=True, timeout=120)
        pids = {int(line.split("server pid ")[1].split()[0]) for line in _history(home)}
        if record is not None:
            pids.add(record.pid)
        assert [pid for pid in pids if _alive(pid)] == []


def _state(home: Path) -> Path:
    return home / ".local" / "share" / "fileorg" / "prefect-server"


def _history(home: Path, what: str = "server pid") -> list[str]:
    log = _state(home) / "history.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if what in line]


def _organize(env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    command = [str(FILEORG), "organize", str(home / "Downloads"), "--mode", "category_year"]
    return subprocess.Popen(
        [*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _finished(process: subprocess.Popen[bytes]) -> dict[str, object]:
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, err.decode()[-3000:]
    document: dict[str, object] = json.loads(out)
    return document


def _fileorg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FILEORG), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_second_run_reuses_the_first_runs_server_and_stop_stops_it(
    home: tuple[Path, dict[str, str]],
) -> None:
    home_dir, env = home
    nothing = _fileorg(env, "status")

    first = _finished(_organize(env, home_dir))
    started = background.read_record(_state(home_dir))
    runner = warm_state.find(_state(home_dir))
    used = server_use.last_use(_state(home_dir), 0.0)  # when the first run let go of it
    second = _finished(_organize(env, home_dir))
    reused = background.read_record(_state(home_dir))
    shown = json.loads(_fileorg(env, "status", "--json").stdout)
    text = _fileorg(env, "status").stdout
    stopped = _fileorg(env, "stop")
    after = _fileorg(env, "status")
    again = _fileorg(env, "stop")

    assert nothing.returncode == 0 and "no local Prefect server is running" in nothing.stdout
    assert first["status"] == second["status"] == "planned"
    assert started is not None and reused == started
    # The first run started the warm runner while the server it started came up (it imports
    # on the core the waiting run leaves idle), not as it ended: ready for a run right after.
    assert runner is not None and runner.started < used
    assert len(_history(home_dir, "started server")) == 1
    assert len(_history(home_dir, "reused server")) == 1
    assert shown["running"] is True
    assert (shown["pid"], shown["url"]) == (started.pid, f"http://127.0.0.1:{started.port}")
    assert shown["home"] == str(_state(home_dir) / "home")
    assert shown["uptime_seconds"] > 0
    expected_prefect, expected_fileorg = background.running_versions()
    assert (shown["prefect_version"], shown["fileorg_version"]) == (
        expected_prefect,
        expected_fileorg,
    )
    assert shown["outdated"] is False and shown["in_use"] is False
    assert shown["idle_stop_minutes"] == 30  # the default
    assert shown["idle_seconds"] <= shown["uptime_seconds"]
    assert "(stops itself after 30m 0s unused)" in text
    assert f"versions     Prefect {expected_prefect}, fileorg {expected_fileorg}\n" in text
    assert f"http://127.0.0.1:{started.port}" in text and str(started.pid) in text
    assert stopped.returncode == 0
    first_line = f"stopped the local Prefect server (pid {started.pid})\n"
    assert stopped.stdout.startswith(first_line)  # then the warm runner's, if one started
    assert not _alive(started.pid) and port_free(started.port)
    assert "no local Prefect server is running" in after.stdout
    assert again.returncode == 0 and again.stdout == "no local Prefect server was running\n"


def test_two_runs_started_at_once_start_one_server(home: tuple[Path, dict[str, str]]) -> None:
    """Both runs wait at the lock at the same time (the test holds it until both have said
    so), then the first starts the server and the second reuses it."""
    home_dir, env = home
    state = _state(home_dir)
    state.mkdir(parents=True)
    fd = os.open(state / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        runs = [_organize(env, home_dir), _organize(env, home_dir)]

        def both_waiting() -> bool:
            assert all(run.poll() is None for run in runs), "a run ended before the lock"
            return len(_history(home_dir, "waiting for the lock")) == 2

        until(both_waiting, DEADLINE, "both runs to wait for the lock", every=0.1)
    finally:
        os.close(fd)  # releases the lock
    documents = [_finished(run) for run in runs]

    waiting = {line.split("pid ")[1].split(":")[0] for line in _history(home_dir, "waiting")}
    assert waiting == {str(run.pid) for run in runs}
    assert [d["status"] for d in documents] == ["planned", "planned"]
    assert len(_history(home_dir, "started server")) == 1
    assert len(_history(home_dir, "reused server")) == 1
    record = background.read_record(state)
    assert record is not None and background.find(state) == record


class _Healthy(BaseHTTPRequestHandler):
    """Someone else's server on the recorded port, answering /health as Prefect would."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        pass


def test_a_stale_record_is_replaced_without_touching_its_pid_or_port(tmp_path: Path) -> None:
    """The record names a live process that is not ours (this test: a reused pid) and a port
    another program answers /health on: a new server is started on another port, and neither
    the process nor the other program is disturbed."""
    state = tmp_path / "prefect-server"
    state.mkdir()
    other = HTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_address[1]
    stale = background.Server(os.getpid(), port, "not-its-token", 0.0, str(state / "home"))
    (state / "server.json").write_text(json.dumps(stale.__dict__))
    server = None
    try:
        assert background.find(state) is None  # status would say none runs

        server = background.ensure(state)
        found = background.find(state)

        assert server.pid != os.getpid() and server.port != port
        assert found == server and background.read_record(state) == server
        assert background.healthy(f"http://127.0.0.1:{port}/api")  # the other one still answers
    finally:
        stopped = server_stop.stop(state).server
        other.shutdown()
    assert stopped == server and server is not None and not _alive(server.pid)


def test_a_dead_servers_record_is_replaced_and_stop_says_none_ran(tmp_path: Path) -> None:
    state = tmp_path / "prefect-server"
    state.mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = background.Server(int(gone.stdout), 1, "t", 0.0, str(state / "home"))
    (state / "server.json").write_text(json.dumps(dead.__dict__))

    assert background.find(state) is None
    assert server_stop.stop(state).server is None  # nothing was running: the record is forgotten
    assert background.read_record(state) is None


def test_a_server_of_other_versions_is_replaced_unless_a_run_still_uses_it(
    tmp_path: Path,
) -> None:
    """After an upgrade the recorded server runs other versions: the next run stops it and
    starts one of its own, but not while another run still reports to it (it is refused
    with one line, and the old server and its record stay as they were)."""
    state = tmp_path / "prefect-server"
    old = background.ensure(state, idle_minutes=0)  # idle 0: it never stops itself
    other_run: int | None = None
    new = None
    try:
        server_use.done(state)
        old = dataclasses.replace(old, prefect_version="0.0.1")
        save_record(state / "server.json", old)  # as an older fileorg would have left it
        other_run = os.open(state / "in-use.lock", os.O_RDWR)
        fcntl.flock(other_run, fcntl.LOCK_SH)
        with pytest.raises(background.BackgroundServerError) as refused:
            background.ensure(state, idle_minutes=0)
        kept = background.read_record(state)
        os.close(other_run)  # that run has ended
        other_run = None

        new = background.ensure(state, idle_minutes=0)
    finally:
        # Whatever failed above, no server of this test outlives it: the "other run" lets go
        # first (held, it made the stop below refuse, and the server ran on after the suite).
        if other_run is not None:
            os.close(other_run)
        stopped = server_stop.stop(state, force=True).server  # whichever the record names
        background.kill(old)  # the record may no longer name it

    assert str(refused.value).startswith(
        f"the local Prefect server (pid {old.pid}) runs Prefect 0.0.1 and fileorg "
    )
    assert str(refused.value).endswith(
        "a run still uses it: run this again when that run has ended"
    )
    assert kept == old
    assert new is not None and new.pid != old.pid and stopped == new
    assert (new.prefect_version, new.fileorg_version) == background.running_versions()
    assert not _alive(old.pid) and not _alive(new.pid)
    assert len(_history_of(state, f"stopped server pid {old.pid}: it runs Prefect 0.0.1")) == 1
    assert _servers_of(state) == []  # nor a server of a start it gave up on (a CI run's leftover)


def _servers_of(state: Path) -> list[int]:
    """Live processes whose command line names this server folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(state).encode() in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_an_unused_server_stops_itself_and_one_in_use_does_not(tmp_path: Path) -> None:
    """While a run holds it (this test, through ensure), the server's watchdog renews its
    last use well past the idle period instead of stopping; once let go, it stops itself,
    forgets its record, and the next run starts another."""
    state = tmp_path / "prefect-server"
    idle_minutes = 0.02  # 1.2 s
    server = background.ensure(state, idle_minutes=idle_minutes)
    try:
        renewed_after = server.started + 3 * idle_minutes * 60

        def renewed() -> bool:
            return server_use.last_use(state, server.started) > renewed_after

        until(renewed, DEADLINE, "the watchdog to renew the last use", every=0.2)
        alive_while_used = _alive(server.pid) and background.find(state) == server
        server_use.done(state)
        until(lambda: not _alive(server.pid), DEADLINE, "the idle server to stop itself")
    finally:
        server_stop.stop(state)

    assert alive_while_used
    assert background.read_record(state) is None
    assert len(_history_of(state, f"server pid {server.pid} stopped itself")) == 1


def test_a_record_of_another_shape_still_names_its_process(tmp_path: Path) -> None:
    """An older record (no versions) reads as outdated; a newer one's unknown fields are
    dropped: either way the process it names can be found and stopped."""
    older = {"pid": 1, "port": 2, "token": "t", "started": 0.0, "home": "h"}
    (tmp_path / "server.json").write_text(json.dumps(older))
    read_older = background.read_record(tmp_path)
    (tmp_path / "server.json").write_text(json.dumps({**older, "future": [1]}))
    read_newer = background.read_record(tmp_path)

    assert read_older == background.Server(1, 2, "t", 0.0, "h")
    assert read_older is not None and not background.current(read_older)
    assert read_newer == read_older


def _history_of(state: Path, what: str) -> list[str]:
    return [line for line in (state / "history.log").read_text().splitlines() if what in line]


def test_stop_is_refused_while_a_run_uses_the_server_unless_forced(
    home: tuple[Path, dict[str, str]],
) -> None:
    """`fileorg stop` would pull the server from under a run still reporting to it: it says
    so in one line (exit 1) and leaves the server and its record; --force stops it."""
    home_dir, env = home
    state = _state(home_dir)
    server = background.ensure(state, idle_minutes=0)
    server_use.done(state)
    other_run = os.open(state / "in-use.lock", os.O_RDWR)
    fcntl.flock(other_run, fcntl.LOCK_SH)  # as a run reporting to it holds it
    try:
        refused = _fileorg(env, "stop")
        kept, alive = background.read_record(state), _alive(server.pid)
        forced = _fileorg(env, "stop", "--force", "--json")
    finally:
        os.close(other_run)

    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == (
        f"error: a run is using the local Prefect server (pid {server.pid}): it was not "
        "stopped; run this again when that run has ended (fileorg stop --force stops it now, "
        "and that run loses its server)\n"
    )
    assert kept == server and alive
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["pid"] == server.pid
    assert not _alive(server.pid) and background.read_record(state) is None


REGISTER = """
import asyncio
from prefect.client.orchestration import get_client

async def main():
    async with get_client() as client:  # no runner: what `fileorg serve`'s would register
        flow_id = await client.create_flow_from_name("organize")
        await client.create_deployment(flow_id=flow_id, name="scheduled-cleanup")

asyncio.run(main())
"""


def test_schedules_are_kept_by_the_background_server_on_embedded_defaults(
    home: tuple[Path, dict[str, str]],
) -> None:
    """The tryout: `schedule add` wanted PREFECT_API_URL. It now uses (or starts) the server
    `organize` uses; the deployment and its runs are a runner's (`fileorg serve`): without the
    deployment one line says so, and a schedule added while no runner serves says its runs wait."""
    home_dir, env = home
    add = ("schedule", "add", str(home_dir / "Downloads"), "--every", "3600")

    unregistered = _fileorg(env, *add)
    server = background.read_record(_state(home_dir))
    assert server is not None and _alive(server.pid)  # started for the schedule
    assert unregistered.returncode == 2
    assert unregistered.stderr.splitlines() == [
        "error: the organize/scheduled-cleanup deployment is not registered on this Prefect "
        "server: run `fileorg serve` (its runner registers it) or deploy prefect.yaml "
        "(docs/api.md)"
    ]
    registered = subprocess.run(
        [sys.executable, "-c", REGISTER], env={**env, "PREFECT_API_URL": server.api_url},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    added = _fileorg(env, *add, "--json")
    listed = _fileorg(env, "schedule", "list", "--json")
    assert added.returncode == 0, added.stderr
    assert "no runner serves the deployments now" in added.stderr  # its runs wait for one
    schedule = json.loads(added.stdout)
    assert [s["id"] for s in json.loads(listed.stdout)] == [schedule["id"]]
    assert background.read_record(_state(home_dir)) == server  # the same server each time
    assert _fileorg(env, "schedule", "remove", schedule["id"]).returncode == 0


def test_schedule_list_and_remove_start_no_server_when_none_is_kept(
    home: tuple[Path, dict[str, str]],
) -> None:
    """With no local server running and none of its schedules in its database (it never ran,
    or ran and stopped with none), list says so and remove refuses, neither starting it."""
    home_dir, env = home
    missing = "0b0e5d1c-0000-4000-8000-000000000000"

    def answers() -> list[tuple[int, str, str]]:
        listed = _fileorg(env, "schedule", "list")
        as_json = _fileorg(env, "schedule", "list", "--json")
        removed = _fileorg(env, "schedule", "remove", missing)
        assert background.read_record(_state(home_dir)) is None  # nothing started
        return [(r.returncode, r.stdout, r.stderr) for r in (listed, as_json, removed)]

    expected = [
        (0, "", "no schedules\n"),
        (0, "[]\n", ""),
        (2, "", f"error: no schedule {missing}: the local Prefect server keeps none\n"),
    ]
    assert answers() == expected  # it never ran: no database
    _finished(_organize(env, home_dir))
    assert _fileorg(env, "stop").returncode == 0
    assert (_state(home_dir) / "home" / "prefect.db").exists()
    assert answers() == expected  # its database, read without it: no schedule
