"""The warm runner (flows/cli/runner.py, warm.py, warm_state.py): a real one, beside a real
background Prefect server, on the README's embedded defaults (no PREFECT_API_URL). A run it
serves must be the run this process would have made: the same output and exit code, the same
question on the same terminal, the same Ctrl-C line, the same state when it is killed; and
anything doubtful runs here instead. One home, server and runner for the module (each test
makes sure the runner it needs is ready); the last step stops both and checks nothing is left."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.cli import runner, warm_state
from storage.locations import DataStore
from tests.flows.cli_helpers import on_terminal, planned, write_tree
from tests.flows.test_serve import _alive
from tests.polling import until

FILEORG = Path(sys.executable).with_name("fileorg")
DEADLINE = 300.0  # a deadline, polled: several suites share two cores
IDS = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?")
SECONDS = re.compile(r"\d+\.\d+ s\b")
FINGERPRINT = """
import json, os, sys
from flows.cli import warm_state
print(warm_state.fingerprint(warm_state.code_digest(), warm_state.env_digest(os.environ)))
"""


@dataclass(frozen=True)
class Home:
    home: Path
    env: dict[str, str]

    @property
    def state(self) -> Path:
        return self.home / ".local" / "share" / "fileorg" / "prefect-server"

    @property
    def folder(self) -> Path:
        return warm_state.warm_dir(self.state)

    def log(self, what: str = "") -> list[str]:
        path = self.folder / "runner.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if what in line]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """Ten files in Downloads, FILEORG_DATA_URL naming the default folder (the runner's own
    environment has no FILEORG_*: the child must take it from the client) and no
    PREFECT_API_URL; afterwards `fileorg stop`, and neither process is left running."""
    home = tmp_path_factory.mktemp("warm") / "home"
    write_tree(home, {f"Downloads/note {i}.txt": f"note {i % 5}\n".encode() for i in range(10)})
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FILEORG_", "XDG_"))
    }
    env.update(
        HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        FILEORG_DATA_URL=str(home / ".local" / "share" / "fileorg"),
    )
    found = Home(home, env)
    try:
        yield found
    finally:
        record = warm_state.read(found.folder)
        stopped = _fileorg(env, "stop", "--json")
        if record is not None:
            until(lambda: not _alive(record.pid), 60, "the runner to exit")
        assert stopped.returncode == 0, stopped.stderr


def _fileorg(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FILEORG), *map(str, args)],
        env=env,
        cwd=env["HOME"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def _fingerprint(env: dict[str, str]) -> str:
    """What `fileorg` computes for `env` (its sys.path, not pytest's)."""
    done = subprocess.run(
        [sys.executable, "-c", FINGERPRINT], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def ready_runner(home: Home, env: dict[str, str] | None = None) -> warm_state.Runner:
    """A ready runner that serves `env` (the module's by default), started if none does."""
    env = env or home.env

    def ready() -> warm_state.Runner | None:
        found = warm_state.find(home.state)
        if found is not None and not found.ready:
            return None  # starting (with its starter's fingerprint)
        if found is not None and found.fingerprint == _fingerprint(env):
            return found
        warm_state.start(home.state, env)  # none, or one of other code or settings
        return None

    return until(ready, DEADLINE, "a ready runner", every=0.5, detail=lambda: str(home.log()))


def _same(text: str) -> str:
    """Output with what differs between two runs (ids, seconds) blanked."""
    return SECONDS.sub("S", IDS.sub("ID", text))


def _document(out: str) -> dict[str, object]:
    document: dict[str, object] = json.loads(out)
    report = document["report"]
    assert isinstance(report, dict)
    for key in ("operation_id", "stages"):
        report.pop(key)
    document.pop("operation_id")
    return document


def test_the_first_run_starts_a_runner_and_the_second_goes_warm_with_the_same_output(
    home: Home,
) -> None:
    downloads = home.home / "Downloads"
    warm_state.stop(home.state)  # if an earlier test started one
    first = _fileorg(home.env, "organize", downloads, "--json")
    assert first.returncode == 0, first.stderr
    record = ready_runner(home)
    assert home.log(f"started runner pid {record.pid}")  # by the first run, as it ended
    status = json.loads(_fileorg(home.env, "status", "--json").stdout)
    runs = len(home.log("runs organize"))

    warm = _fileorg(home.env, "organize", downloads, "--json")
    here = _fileorg({**home.env, "FILEORG_WARM": "0"}, "organize", downloads, "--json")

    assert status["runner"]["pid"] == record.pid and status["runner"]["ready"] is True
    assert len(home.log("runs organize")) == runs + 1  # the second run, not the third
    assert warm.returncode == here.returncode == 0, warm.stderr
    assert _document(warm.stdout) == _document(here.stdout) == _document(first.stdout)
    assert warm.stderr == here.stderr == ""
    operations = home.home / ".local" / "share" / "fileorg" / "operations"
    assert json.loads(warm.stdout)["operation_id"] in os.listdir(operations)


def test_a_run_in_another_terminal_environment_prints_what_it_would_print_here(
    home: Home,
) -> None:
    """The runner's process has none of these: the child takes them, as a process would."""
    record = ready_runner(home)
    env = {**home.env, "COLUMNS": "64", "TZ": "Pacific/Auckland", "NO_COLOR": "1"}
    runs = len(home.log("runs organize"))

    warm = _fileorg(env, "organize", home.home / "Downloads")
    here = _fileorg({**env, "FILEORG_WARM": "0"}, "organize", home.home / "Downloads")

    assert len(home.log("runs organize")) == runs + 1
    assert warm_state.find(home.state) == record
    assert warm.returncode == here.returncode == 0, warm.stderr
    assert _same(warm.stderr) == _same(here.stderr)
    assert max(len(line) for line in warm.stderr.splitlines()) <= 64
    assert _same(warm.stdout) == _same(here.stdout)


def test_bad_input_is_the_same_one_line_and_exit_2(home: Home) -> None:
    ready_runner(home)
    runs = len(home.log("runs organize"))

    warm = _fileorg(home.env, "organize", home.home / "nowhere")
    here = _fileorg({**home.env, "FILEORG_WARM": "0"}, "organize", home.home / "nowhere")

    assert len(home.log("runs organize")) == runs + 1
    assert warm.returncode == here.returncode == 2
    assert warm.stderr == here.stderr and len(warm.stderr.splitlines()) == 1
    assert warm.stderr.startswith("error: ")


def test_a_bad_option_names_fileorg_in_the_child_as_here(home: Home) -> None:
    """The tryout: the warm runner's child said `python -m flows.cli...` in its hint."""
    ready_runner(home)
    runs = len(home.log("runs organize"))

    warm = _fileorg(home.env, "organize", home.home / "Downloads", "--bogus")
    here = _fileorg(
        {**home.env, "FILEORG_WARM": "0"}, "organize", home.home / "Downloads", "--bogus"
    )

    assert len(home.log("runs organize")) == runs + 1  # the child ran it
    assert warm.returncode == here.returncode == 2
    assert warm.stderr == here.stderr, (warm.stderr, here.stderr)
    assert "(see fileorg organize --help)" in warm.stderr and "python" not in warm.stderr


def test_the_apply_question_is_asked_and_answered_on_the_users_terminal(home: Home) -> None:
    ready_runner(home)
    root = home.home / "mess"
    write_tree(root, {"a.txt": b"a", "b.jpg": b"b"})
    record = planned(DataStore(home.env["FILEORG_DATA_URL"]), root)
    runs = len(home.log("runs apply"))
    argv = ["sh", "-c", 'cd "$HOME" && exec "$@"', "sh", str(FILEORG), "apply", record.id]

    warm = on_terminal(argv, home.env, answer=b"n\n", timeout=DEADLINE)
    here = on_terminal(argv, {**home.env, "FILEORG_WARM": "0"}, answer=b"n\n", timeout=DEADLINE)

    assert len(home.log("runs apply")) == runs + 1
    assert warm.asked and here.asked
    assert warm.returncode == here.returncode == 1
    assert "not applied: nothing changed" in warm.output
    assert _same(warm.output) == _same(here.output)
    assert sorted(p.name for p in root.iterdir()) == ["a.txt", "b.jpg"]


def _started(
    home: Home, env: dict[str, str], *args: str | Path
) -> tuple[subprocess.Popen[bytes], list[bytes]]:
    """A run under way: its first line ("operation ... on ...") is on stderr."""
    process = subprocess.Popen(
        [str(FILEORG), *map(str, args)],
        env=env,
        cwd=env["HOME"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lines: list[bytes] = []
    assert process.stderr is not None
    stream = process.stderr
    threading.Thread(target=lambda: lines.extend(stream), daemon=True).start()
    until(
        lambda: any(b"operation " in line for line in lines),
        DEADLINE,
        "the run to start",
        detail=lambda: repr(lines),
    )
    return process, lines


def test_ctrl_c_reaches_the_child_and_ends_it_with_the_one_line(home: Home) -> None:
    ready_runner(home)
    op = str(uuid.uuid4())
    process, lines = _started(home, home.env, "organize", home.home / "Downloads", "--id", op)
    assert home.log(f"for client pid {process.pid}")  # warm

    process.send_signal(signal.SIGINT)  # the terminal signals the CLI's process group only
    code = process.wait(timeout=DEADLINE)

    until(lambda: home.log("ended: exit 130"), 60, "the child to end")
    assert code == 130
    last = lines[-1].decode()
    assert last.startswith("interrupted: nothing in ") and f"--id {op}" in last


def test_a_killed_runner_leaves_what_a_killed_run_leaves(home: Home) -> None:
    record = ready_runner(home)
    ops = str(uuid.uuid4()), str(uuid.uuid4())
    here, _ = _started(
        home, {**home.env, "FILEORG_WARM": "0"}, "organize", home.home / "Downloads", "--id", ops[1]
    )  # first: it takes seconds more to get as far
    warm, _ = _started(home, home.env, "organize", home.home / "Downloads", "--id", ops[0])
    child = int(home.log(f"for client pid {warm.pid}")[-1].split("child pid ")[1].split()[0])

    os.kill(record.pid, signal.SIGKILL)
    here.kill()
    warm_code, here_code = warm.wait(timeout=DEADLINE), here.wait(timeout=DEADLINE)
    until(lambda: not _alive(child), 60, "the child to die with the runner")
    listed = json.loads(_fileorg(home.env, "operations", "--json").stdout)["operations"]
    status = {op["id"]: (op["status"], op["stage"]) for op in listed}
    resumed = _fileorg(home.env, "organize", home.home / "Downloads", "--id", ops[0], "--json")

    assert warm_code == 1 and here_code == -signal.SIGKILL
    assert (ops[0] in status) == (ops[1] in status)
    if ops[0] in status:
        assert status[ops[0]][0] == status[ops[1]][0]
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["status"] == "planned"


def test_other_settings_run_here_and_start_a_runner_of_their_own(home: Home) -> None:
    old = ready_runner(home)
    env = {**home.env, "FILEORG_SHARD_ROWS": "500"}  # another fingerprint
    runs = len(home.log("runs organize"))

    done = _fileorg(env, "organize", home.home / "Downloads", "--json")
    new = ready_runner(home, env)

    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "planned"
    assert len(home.log("runs organize")) == runs  # not warm
    assert new.pid != old.pid and home.log(f"stopped runner pid {old.pid} (other code")
    until(lambda: not _alive(old.pid), 60, "the old runner to exit")


def test_stop_stops_the_runner_and_the_server(home: Home) -> None:
    record = ready_runner(home)
    stopped = _fileorg(home.env, "stop")
    after = json.loads(_fileorg(home.env, "status", "--json").stdout)

    assert stopped.returncode == 0
    assert f"stopped the warm runner (pid {record.pid})" in stopped.stdout
    until(lambda: not _alive(record.pid), 60, "the runner to exit")
    assert after["running"] is False and after["runner"] is None
    assert not (home.folder / "runner.sock").exists()


def test_the_runner_folder_and_socket_are_the_users_alone(home: Home) -> None:
    ready_runner(home)
    assert (home.folder.stat().st_mode & 0o777) == 0o700
    assert ((home.folder / "runner.sock").stat().st_mode & 0o777) == 0o600


def test_a_long_folder_path_still_gets_a_socket(tmp_path: Path) -> None:
    folder = tmp_path / ("x" * 120)
    folder.mkdir()
    address, fd = warm_state.socket_path(folder)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(address)
        listener.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
            client.connect(address)
    finally:
        listener.close()
        if fd is not None:
            os.close(fd)
    assert fd is not None and (folder / "runner.sock").exists()


def test_a_live_thread_forbids_the_fork(tmp_path: Path) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    safe = runner.fork_safe()
    thread.start()
    try:
        # this thread and any the suite's earlier tests left in this process
        assert runner.fork_safe() == f"{threading.active_count()} threads alive"
    finally:
        stop.set()
        thread.join()
    assert safe is None or "threads alive" in safe  # pytest's own threads, if any


def test_an_edited_source_file_changes_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for package in warm_state.PACKAGES:
        write_tree(tmp_path, {f"{package}/__init__.py": b""})
    monkeypatch.setattr(warm_state, "ROOT", tmp_path)
    before = warm_state.code_digest()
    (tmp_path / "flows" / "__init__.py").write_text("x = 1\n")
    edited = warm_state.code_digest()
    env = {"HOME": str(tmp_path)}

    assert before != edited
    assert warm_state.env_digest(env) == warm_state.env_digest({**env, "COLUMNS": "50"})
    assert warm_state.env_digest(env) != warm_state.env_digest({**env, "FILEORG_X": "1"})
    assert warm_state.env_digest(env) != warm_state.env_digest({**env, "PREFECT_HOME": "/x"})


def test_an_upgraded_distribution_changes_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip and uv add a dist-info folder (and remove the old one) in site-packages: a runner
    of the Prefect (or fileorg) before an upgrade is not the one after it."""
    site = tmp_path / "site-packages"
    (site / "prefect-3.9.1.dist-info").mkdir(parents=True)
    os.utime(site, (1, 1))
    monkeypatch.setattr(sys, "path", [sys.path[0], str(site)])
    before = warm_state.code_digest()
    (site / "prefect-3.9.1.dist-info").rename(site / "prefect-3.10.0.dist-info")

    assert warm_state.code_digest() != before
