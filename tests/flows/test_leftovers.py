"""No process a CLI run started outlives it: the stages' process pool (tasks/pool.py), its
forkserver and the resource tracker hold the run's stdout and stderr, so a reader of them (a
script's `subprocess.run(..., capture_output=True)`) waits until the last of them is gone.
Seen: a bench hung after a dry run through the warm runner, and after a Ctrl-C in the prefix
stage, the forkserver and 8 workers reparented to init. Each test runs the real `fileorg`
with pipes, on the README's defaults (the background server, the warm runner), with a mark
in its environment that every process it starts inherits (the server and the runner do not:
they drop FILEORG_*, and they are meant to outlive the run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import processes
from tests.flows.test_warm import FILEORG, Home, home, ready_runner  # noqa: F401
from tests.polling import until

# FILEORG_RUNNER_*: left out of the warm runner's fingerprint, so a new mark per run still
# goes warm; FILEORG_*: not passed on to the background server or the runner.
MARK = "FILEORG_RUNNER_TEST_MARK"
EOF_SECONDS = 5.0  # after the exit: the pipes close with the last process that holds them
POOL_STAGES = ("classify", "prefix")  # the stages that run in the process pool
DEADLINE = 300.0


def marked(mark: str) -> dict[int, str]:
    return processes.marked(MARK, mark)


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    mark: str
    out: list[bytes] = field(default_factory=list)  # stdout, then stderr, as read
    closed: dict[str, float] = field(default_factory=dict)  # pipe: when it reached EOF

    @property
    def text(self) -> str:
        return b"".join(self.out).decode(errors="replace")


def _read(run: Run, name: str) -> None:
    stream = getattr(run.process, name)
    for chunk in iter(lambda: stream.read1(65536), b""):
        run.out.append(chunk)
    run.closed[name] = time.monotonic()


def start(env: dict[str, str], *args: str | Path) -> Run:
    """`fileorg ARGS` with stdout and stderr as pipes, in a process group of its own (the
    terminal's Ctrl-C reaches a group), marked."""
    mark = uuid.uuid4().hex
    process = subprocess.Popen(
        [str(FILEORG), *map(str, args)],
        env={**env, MARK: mark},
        cwd=env["HOME"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    run = Run(process, mark)
    for name in ("stdout", "stderr"):
        threading.Thread(target=_read, args=(run, name), daemon=True).start()
    return run


def ended(run: Run) -> tuple[int, dict[int, str]]:
    """Its exit code, once both pipes reached EOF (within EOF_SECONDS of the exit), and what
    carried its mark then (killed afterwards, so that a failure leaves nothing behind)."""
    code = run.process.wait(timeout=DEADLINE)
    exited = time.monotonic()
    try:
        until(
            lambda: len(run.closed) == 2,
            EOF_SECONDS,
            "its stdout and stderr to reach EOF",
            every=0.01,
            detail=lambda: f"still alive: {marked(run.mark)}",
        )
        assert max(run.closed.values()) - exited < EOF_SECONDS
        return code, marked(run.mark)
    finally:
        processes.kill(marked(run.mark))


@pytest.fixture
def tree(home: Home) -> Iterator[Path]:  # noqa: F811
    """A tree the pool stages take a second or two over: 20,000 small files, every one
    sharing its size with others (the prefix stage reads them all), new for each test (a run
    reuses what an earlier operation on the same root classified and hashed)."""
    root = home.home / f"tree-{uuid.uuid4().hex[:8]}"
    for d in range(20):
        folder = root / f"d{d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"note {i}.txt").write_bytes(b"note %04d\n" % ((d * 1000 + i) % 5000))
    yield root


def _record(home: Home, op: str) -> dict[str, object]:  # noqa: F811
    path = Path(home.env["FILEORG_DATA_URL"]) / "operations" / op / "operation.json"
    with suppress(OSError, ValueError):
        found: dict[str, object] = json.loads(path.read_text())
        return found
    return {}


@dataclass
class Way:
    """How a run is started: `env` for it, and whether a ready warm runner serves it."""

    env: dict[str, str]
    warm: bool


@pytest.fixture(params=[False, True], ids=["cold", "warm"])
def way(request: pytest.FixtureRequest, home: Home) -> Way:  # noqa: F811
    """Cold: the command runs itself (FILEORG_WARM=0); warm: a ready runner forks its child."""
    if request.param:
        ready_runner(home)
        return Way(home.env, warm=True)
    return Way({**home.env, "FILEORG_WARM": "0"}, warm=False)


def test_a_dry_run_leaves_no_process_and_its_pipes_close(
    home: Home,  # noqa: F811
    tree: Path,
    way: Way,
) -> None:
    run = start(way.env, "organize", tree, "--dry-run")
    code, left = ended(run)

    assert code == 0, run.text
    assert "(planned); nothing changed" in run.text
    assert bool(home.log(f"for client pid {run.process.pid}")) == way.warm  # warm, or not
    assert left == {}


STOPS = {"ctrl-c": signal.SIGINT, "sigterm": signal.SIGTERM, "sighup": signal.SIGHUP}


@pytest.mark.parametrize("signum", list(STOPS.values()), ids=list(STOPS))
def test_a_run_stopped_in_a_pool_stage_leaves_no_process_and_its_pipes_close(
    home: Home,  # noqa: F811
    tree: Path,
    way: Way,
    signum: int,
) -> None:
    """However it is stopped (a kill -9 aside), the operation says `interrupted`, with the
    line the run printed last: the command that resumes it."""
    op = str(uuid.uuid4())
    run = start(way.env, "organize", tree, "--dry-run", "--id", op)

    def pool_at_work() -> dict[int, str] | None:
        assert run.process.poll() is None, run.text
        pool = {p: c for p, c in marked(run.mark).items() if "multiprocessing.forkserver" in c}
        at_work = _record(home, op).get("stage") in POOL_STAGES and len(pool) >= 2
        return pool if at_work else None  # the forkserver and a worker at least

    pool = until(pool_at_work, DEADLINE, "a pool stage under way", every=0.01)
    if signum == signal.SIGINT:
        os.killpg(run.process.pid, signum)  # a Ctrl-C: the terminal signals the whole group
    else:
        os.kill(run.process.pid, signum)  # `kill PID`, a supervisor: the CLI alone
    code, left = ended(run)
    record = _record(home, op)
    listed = subprocess.run(
        [str(FILEORG), "operations", "--json"],
        env=way.env,
        cwd=way.env["HOME"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )

    assert code == (130 if signum == signal.SIGINT else -signum), run.text
    assert record["stage"] in POOL_STAGES  # it landed there, mid-run
    last = run.text.strip().splitlines()[-1]
    assert last.startswith("interrupted: nothing in ") and last.endswith(f"--id {op}"), run.text
    assert (record["status"], record["error"]) == ("interrupted", last)
    shown = [o for o in json.loads(listed.stdout)["operations"] if o["id"] == op]
    assert [(o["status"], o["stage"]) for o in shown] == [("interrupted", record["stage"])]
    assert "Traceback" not in run.text, run.text
    assert bool(home.log(f"for client pid {run.process.pid}")) == way.warm
    assert set(pool) - set(left) == set(pool) and left == {}
