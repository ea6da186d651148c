"""tasks.pool in a run's process as the runner starts it (flows.warm_starts): once the run is
done, its pool's workers are gone before multiprocessing joins the process's children."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from flows import warm_starts
from tasks import pool


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
