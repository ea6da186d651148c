"""An apply or a rollback killed with a batch announced (its items journaled as intents, none
carried out: storage.locks' "announced" pause point), then finished by the same command: what
`fileorg` prints and records afterwards. The tryout's Ctrl-C of an apply, then a rollback,
printed "Rolled back" and then "4,096 files not restored ... interrupted: run the same command
again" for files apply never moved; and an operation finished after an interruption kept the
interruption's error ("run it again to finish it") in `fileorg operations`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from storage import locks
from storage.operations import OperationRecord, PlanOptions
from tests.apply_helpers import differences
from tests.flows.cli_helpers import FILEORG, Cli, planned, write_tree
from tests.polling import until_created
from tests.trees import Entry, snapshot

FILES = {f"Camera/IMG_{i:04d}.jpg": b"\xff\xd8\xff\xe0 photo %d" % i for i in range(4)} | {
    f"inbox/note {i}.txt": b"note %d" % i for i in range(4)
}


@pytest.fixture
def cli(tmp_path: Path, prefect_server: str) -> Cli:
    write_tree(tmp_path / "mess", FILES)
    env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
    data = str(tmp_path / "data")
    return Cli({**env, "FILEORG_DATA_URL": data, "PREFECT_API_URL": prefect_server})


def killed_at_announce(cli: Cli, barrier: Path, *args: str) -> None:
    """`fileorg ARGS`, SIGKILLed (with all it started) once its first batch is announced."""
    barrier.mkdir()
    run = subprocess.Popen(
        [FILEORG, *args],
        env={**cli.env, locks.PAUSE_ENV: str(barrier), locks.PAUSE_AT_ENV: "announced"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        until_created(barrier / "announced", run, 240)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()


def shown(cli: Cli, operation_id: str) -> dict[str, object]:
    listed = cli.run("operations", "--json")
    assert listed.returncode == 0, listed.stderr
    (record,) = [o for o in json.loads(listed.stdout)["operations"] if o["id"] == operation_id]
    return dict(record)


def planned_mess(tmp_path: Path, cli: Cli) -> tuple[Path, OperationRecord, dict[bytes, Entry]]:
    """The tree's root, its planned operation and its snapshot before anything moved."""
    root = tmp_path / "mess"
    record = planned(cli.store, root, PlanOptions(mode="category"))
    return root, record, snapshot(root)


def test_a_rollback_after_a_killed_apply_lists_no_file_apply_never_moved(
    tmp_path: Path, cli: Cli
) -> None:
    root, record, before = planned_mess(tmp_path, cli)
    killed_at_announce(cli, tmp_path / "barrier", "apply", record.id, "--yes")
    assert shown(cli, record.id)["status"] == "interrupted"

    undone = cli.run("rollback", record.id)

    assert undone.returncode == 0, undone.stderr
    assert "Rolled back" in undone.stdout
    assert "not restored" not in undone.stderr, undone.stderr
    assert "unfinished" not in undone.stderr, undone.stderr
    assert differences(before, snapshot(root)) == []


def test_an_apply_and_a_rollback_finished_after_a_kill_keep_no_interruption_error(
    tmp_path: Path, cli: Cli
) -> None:
    root, record, before = planned_mess(tmp_path, cli)

    killed_at_announce(cli, tmp_path / "apply-barrier", "apply", record.id, "--yes")
    assert "interrupted" in str(shown(cli, record.id)["error"])
    finished = cli.run("apply", record.id, "--yes")
    assert finished.returncode == 0, finished.stderr
    applied = shown(cli, record.id)

    killed_at_announce(cli, tmp_path / "rollback-barrier", "rollback", record.id)
    assert "interrupted" in str(shown(cli, record.id)["error"])
    undone = cli.run("rollback", record.id)
    assert undone.returncode == 0, undone.stderr
    rolled_back = shown(cli, record.id)

    assert (applied["status"], applied["error"]) == ("applied", None)
    assert (rolled_back["status"], rolled_back["error"]) == ("rolled_back", None)
    assert differences(before, snapshot(root)) == []
