"""tasks.pool in a run's process as the runner starts it (flows.warm_starts): once the run is
done, its pool's workers are gone before multiprocessing joins the process's children."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from flows import warm_starts
from tasks import pool
from tests import processes
from tests.polling import until

ROOT = Path(__file__).resolve().parents[2]


def _uses_the_pool(out: str) -> None:
    assert pool.map_each(abs, [-1, -2, -3], 2) == [1, 2, 3]
    workers = [p.pid for p in multiprocessing.active_children()]
    Path(out).write_text(" ".join(map(str, workers)))
    raise SystemExit(3)  # a run that ends by an exception (a stop) still shuts the pool down


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_runs_process_ends_with_its_pool_workers(tmp_path: Path) -> None:
    out = tmp_path / "workers"
    child = warm_starts._RunContext().Process(target=_uses_the_pool, args=(str(out),))
    child.start()
    child.join(timeout=120)
    ended = child.exitcode is not None
    if not ended:
        child.kill()
    assert ended, "the run's process stayed alive after its work"
    assert child.exitcode == 3
    workers = [int(p) for p in out.read_text().split()]
    assert len(workers) == 2  # the pool really had worker processes
    assert not any(_alive(pid) for pid in workers)


KILLED = """
import os, signal, sys
from tasks import pool
if __name__ == "__main__":
    assert pool.map_each(abs, [-1, -2, -3], 2) == [1, 2, 3]
    print(flush=True)  # the pool is up
    sys.stdin.readline()  # the test has seen its processes
    if sys.argv[1] == "end":
        pool.end()
        os._exit(0)
    os.kill(os.getpid(), signal.SIGKILL)  # nothing of this process's runs now
"""


@pytest.mark.parametrize("how", ["end", "killed"])
def test_no_process_of_the_pool_outlives_its_owner(tmp_path: Path, how: str) -> None:
    """pool.end() before an os._exit stops the workers, the forkserver and the resource
    tracker first; a SIGKILLed owner's are gone promptly after it (each worker watches it).
    Either way the owner's stdout reaches EOF (every one of them holds it)."""
    script = tmp_path / "owner.py"
    script.write_text(KILLED)
    mark = uuid.uuid4().hex
    env = {**os.environ, "POOL_TEST_MARK": mark}
    owner = subprocess.Popen(
        [sys.executable, str(script), how],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert owner.stdin is not None and owner.stdout is not None
    up = owner.stdout.readline()
    helpers = [processes.kind(pid) for pid in processes.marked("POOL_TEST_MARK", mark)]
    owner.stdin.close()  # go on
    code = owner.wait(timeout=120)
    left_at_exit = processes.marked("POOL_TEST_MARK", mark)
    try:
        rest = until(lambda: [owner.stdout.read()], 10, "the owner's stdout to reach EOF")
        gone = until(lambda: not processes.marked("POOL_TEST_MARK", mark), 10, "no helper")
    finally:
        owner.stdout.close()
        processes.kill(processes.marked("POOL_TEST_MARK", mark))

    assert up == b"\n" and rest == [b""] and gone
    kinds = [said for said in helpers if said is not None]  # while the owner lived
    assert kinds.count("a process pool's forkserver or worker") >= 2  # it, and a worker
    assert "a resource tracker" in kinds
    assert code == (0 if how == "end" else -signal.SIGKILL)
    if how == "end":
        assert left_at_exit == {}  # none outlived it, even by a moment


AFTER_END = """
import multiprocessing, sys
from tasks import pool
if __name__ == "__main__":
    assert pool.map_each(abs, [-1, -2], 2) == [1, 2]
    pool.end()
    try:
        pool.map_each(abs, [-1, -2], 2)  # a stage's thread, still running as the process ends
    except RuntimeError as exc:
        print(exc)
    print(len(multiprocessing.active_children()))
"""


def _run_script(script: Path, source: str) -> subprocess.CompletedProcess[str]:
    """`source` run as a script of its own in the checkout (a pool's process, not pytest's)."""
    script.write_text(source)
    return subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_no_pool_is_made_once_it_has_ended(tmp_path: Path) -> None:
    """end() runs as the process exits, possibly from a signal's handler while a stage's thread
    still works: its next job (a retry after the pool it used was ended) starts no processes,
    which the exit would tear down half-started."""
    done = _run_script(tmp_path / "after_end.py", AFTER_END)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["the process pool has ended: this process is exiting", "0"]


RELEASED = """
import multiprocessing, time
from tasks import pool
def workers():
    return {p.pid for p in multiprocessing.active_children()}
def gone(pids):
    deadline = time.monotonic() + 30
    while pids & workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pids & workers()
if __name__ == "__main__":
    assert pool.map_each(abs, [-1, -2], 2) == [1, 2]
    idle = workers()
    pool.release()
    print(len(idle), gone(idle))
    assert pool.map_each(abs, [-3, -4], 2) == [3, 4]  # a new pool for the next job
    busy = workers()
    held = pool.executor(2).submit(time.sleep, 60)  # still working when it is let go
    time.sleep(0.5)
    working = held.running()
    pool.release()
    started = time.monotonic()
    pool.end()
    print(bool(busy - idle), gone(busy), time.monotonic() - started < 10, working)
"""


def test_released_workers_go_and_end_stops_those_still_working(tmp_path: Path) -> None:
    """release() before the stages that read no content: the pool's idle workers exit, the
    next job gets a new pool, and end() still stops a released worker left with a job."""
    done = _run_script(tmp_path / "released.py", RELEASED)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["2 True", "True True True True"]


HUNG_UP = """
import os, socket
from multiprocessing import forkserver
from tasks import pool
if __name__ == "__main__":
    assert pool.map_each(abs, [-1, -2], 2) == [1, 2]
    server = forkserver._forkserver
    with socket.socket(socket.AF_UNIX) as client:  # a spawn cut short: connected, nothing sent
        client.connect(server._forkserver_address)
    pool.shutdown(wait=True)
    assert pool.map_each(abs, [-3, -4], 2) == [3, 4]  # new workers, from the same forkserver
    print(server._forkserver_pid == forkserver._forkserver._forkserver_pid)
    pool.end()
"""


def test_a_client_that_hangs_up_before_its_fds_leaves_the_forkserver_serving(
    tmp_path: Path,
) -> None:
    """A Ctrl-C can end a run while a stage's thread is connected to the forkserver to start a
    worker: the forkserver goes on (no traceback on the run's terminal) and forks the next."""
    done = _run_script(tmp_path / "hung_up.py", HUNG_UP)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "EOFError" not in done.stderr, done.stderr
    assert done.stdout.splitlines() == ["True"]


def _in_worker(_: int) -> tuple[int, bool]:
    """A pool job: its parent, and whether the parent's main module was run there (as
    `__mp_main__`, which multiprocessing then makes `__main__` too)."""
    return os.getppid(), sys.modules["__main__"].__name__ == "__mp_main__"


OWN_MAIN = """
import os, sys
sys.path.insert(0, os.getcwd())  # the checkout: tests is not installed
from tasks import pool
from tests.tasks.test_pool import _in_worker
if __name__ == "__main__":
    ran = pool.map_each(_in_worker, [0, 1], 2)
    print(all(parent != os.getpid() for parent, _ in ran), [main for _, main in ran])
    pool.end()
"""


def test_a_worker_does_not_import_the_main_module_again(tmp_path: Path) -> None:
    """The main module of a run's process is the runner or the `fileorg` script, which import
    the CLI: a worker of the pool (forked by its forkserver, not by the parent) leaves it be."""
    done = _run_script(tmp_path / "own_main.py", OWN_MAIN)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True [False, False]"]


def _sigint_at_start() -> None:
    """A forkserver child's first act: exit 0 if a Ctrl-C is already ignored, 5 if not."""
    sys.exit(0 if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else 5)


FIRST_INSTRUCTION = """
import multiprocessing, os, sys
sys.path.insert(0, os.getcwd())  # the checkout: tests is not installed
from tasks import pool
from tests.tasks.test_pool import _sigint_at_start
if __name__ == "__main__":
    assert pool.map_each(abs, [-1, -2], 2) == [1, 2]  # the pool's forkserver, its preload run
    child = multiprocessing.get_context("forkserver").Process(target=_sigint_at_start)
    child.start()  # forked by that forkserver, with no initializer
    child.join()
    print(child.exitcode)
    pool.end()
"""


def test_a_worker_ignores_a_ctrl_c_before_its_initializer_runs(tmp_path: Path) -> None:
    """A Ctrl-C reaches every process of the run's group: one that reached a worker forked a
    moment before its initializer (which ignores SIGINT) printed a KeyboardInterrupt traceback.
    What the forkserver forks starts with SIGINT ignored, no initializer needed."""
    done = _run_script(tmp_path / "first_instruction.py", FIRST_INSTRUCTION)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0"]
