"""Two `fileorg` processes at once: the second apply of the same operation, or of an
overlapping root, is refused with one line naming the running one; a killed holder's lock is
free and its apply resumes. The first process is paused inside its lock on a file barrier
(storage.locks.PAUSE_ENV), so the second one provably tries while the first holds it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage import locks, operations
from storage.operations import PlanOptions
from tests.apply_helpers import contents, differences
from tests.flows.cli_helpers import FILEORG, Cli, planned, write_tree
from tests.polling import until_created
from tests.trees import snapshot

FILES = {f"Camera/IMG_{i:04d}.jpg": b"\xff\xd8\xff\xe0 photo %d" % i for i in range(6)} | {
    f"inbox/note {i}.txt": b"note %d" % i for i in range(6)
}


@pytest.fixture
def cli(tmp_path: Path, prefect_server: str) -> Cli:
    """The CLI on a data folder of its own and the session's Prefect server; FILES written
    in tmp_path/mess2."""
    write_tree(tmp_path / "mess2", FILES)
    env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
    data = str(tmp_path / "data")
    return Cli({**env, "FILEORG_DATA_URL": data, "PREFECT_API_URL": prefect_server})


@contextmanager
def paused_apply(
    cli: Cli, operation_id: str, at: str, barrier: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`fileorg apply` of the operation, held at the pause point `at` (storage.locks) for the
    block, then SIGKILLed with everything it started."""
    barrier.mkdir()
    first = subprocess.Popen(
        [FILEORG, "apply", operation_id, "--yes"],
        env={**cli.env, locks.PAUSE_ENV: str(barrier), locks.PAUSE_AT_ENV: at},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        until_created(barrier / at, first, 240)
        yield first
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()


def test_concurrent_applies_are_refused_and_a_killed_holder_frees_its_lock(
    tmp_path: Path, cli: Cli
) -> None:
    root, store, barrier = tmp_path / "mess2", cli.store, tmp_path / "barrier"
    whole = planned(store, root, PlanOptions(mode="category"))
    camera = planned(store, root / "Camera", PlanOptions(mode="year_month"))
    before = snapshot(root)

    with paused_apply(cli, whole.id, "locked", barrier) as first:
        same = cli.run("apply", whole.id, "--yes")
        undo = cli.run("rollback", whole.id)
        inner = cli.run("apply", camera.id, "--yes")
        assert first.poll() is None and not (barrier / "go").exists()  # they did overlap

    running = f"operation {whole.id} is applying {os.path.realpath(root)} (pid {first.pid} on "
    for ran in (same, undo, inner):
        assert ran.returncode == 2, ran.stderr
        (line,) = ran.stderr.splitlines()
        assert line.startswith(f"error: {running}"), line
    assert "overlaps" in inner.stderr
    assert snapshot(root) == before  # the holder was paused before its first move
    assert operations.load(store, camera.id).status == "planned"

    resumed = cli.run("apply", whole.id, "--yes")  # the dead holder's lock is free
    assert resumed.returncode == 0, resumed.stderr
    record = operations.load(store, whole.id)
    assert record.status == "applied"
    assert record.summary["apply"]["done"] == record.summary["moves"] == len(FILES)
    assert record.summary["apply"]["vanished"] == 0
    after = snapshot(root)
    assert after != before and contents(after) == contents(before)


def test_an_apply_killed_mid_way_reads_interrupted_and_rolls_back_exactly(
    tmp_path: Path, cli: Cli
) -> None:
    root, store = tmp_path / "mess2", cli.store
    record = planned(store, root, PlanOptions(mode="category"), shard_rows=3)
    before = snapshot(root)

    with paused_apply(cli, record.id, "shard", tmp_path / "barrier"):
        assert snapshot(root) != before  # the first shard moved, the others not yet

    listed = cli.run("operations", "--status", "interrupted", "--json")
    assert listed.returncode == 0, listed.stderr
    (shown,) = json.loads(listed.stdout)["operations"]
    assert (shown["id"], shown["stage"]) == (record.id, "apply")
    undone = cli.run("rollback", record.id)
    assert undone.returncode == 0, undone.stderr
    assert operations.load(store, record.id).status == "rolled_back"
    # every file and folder back as it was (the root folder's own mtime is not: the folder
    # times apply saves are written when it finishes, so a killed apply leaves none)
    assert differences(before, snapshot(root)) == []
