"""End to end: the API, a real Prefect server and a runner serving the deployments.

Sign up (the first account is the admin), grant a root, start a dry run on a real tree, wait
for it, read the plan, apply it, read the report, roll it back: the tree is as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.orchestrator import PrefectOrchestrator
from tests.api.conftest import Api, User
from tests.trees import snapshot, without_dir_inodes

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 120.0


@pytest.fixture
def runner(
    prefect_server: str, data_dir: Path, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "FILEORG_DATA_URL": str(data_dir),
        "FILEORG_RUNNER_POLL_SECONDS": "1",
        "FILEORG_SECRET_KEY": "s" * 64,  # the API's (tests.api.conftest): it checks the tickets
    }
    log = (tmp_path / "runner.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.deployments"], cwd=REPO, env=env, stdout=log, stderr=log
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def _until(what: str, probe: Any) -> Any:
    """Poll `probe` until it returns something, or fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _finished(api: Api, user: User, op_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        shown: dict[str, Any] = api.client.get(
            f"/api/v1/operations/{op_id}", headers=user.headers
        ).json()
        return shown if shown["status"] in ("completed", "failed", "cancelled") else None

    finished: dict[str, Any] = _until(f"operation {op_id}", probe)
    assert finished["status"] == "completed", finished
    return finished


def _make_tree(root: Path) -> None:
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "holiday.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"a" * 5000)
    (root / "inbox" / "holiday (1).jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"a" * 5000)
    (root / "notes.txt").write_text("shopping list\n")
    (root / "report.pdf").write_bytes(b"%PDF-1.4\n" + b"b" * 300)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_dry_run_apply_and_rollback_through_the_api(
    make_api: Any, runner: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    api: Api = make_api()
    api.client.app.state.orchestrator = PrefectOrchestrator(timeout=20)  # type: ignore[attr-defined]
    root = tmp_path / "photos"
    _make_tree(root)
    before = snapshot(root)
    admin = api.signup("admin")
    api.grant(admin, admin, root)

    def started() -> str | None:  # 503 until the runner has registered its deployments
        response = api.start(admin, root, dry_run=True)
        assert response.status_code in (202, 503), response.text
        return response.json()["operation_id"] if response.status_code == 202 else None

    op_id = _until("the deployments", started)
    planned = _finished(api, admin, op_id)
    assert planned["state"] == "planned"
    assert snapshot(root) == before  # a dry run changes nothing

    plan = api.client.get(f"/api/v1/operations/{op_id}/plan", headers=admin.headers).json()
    moved = {item["src"]: item["dst"] for item in plan["data"] if item["action"] == "move"}
    assert moved["notes.txt"].startswith("Documents/")
    dupes = api.client.get(f"/api/v1/operations/{op_id}/duplicates", headers=admin.headers)
    assert dupes.json()["data"][0]["paths"] == ["inbox/holiday (1).jpg", "inbox/holiday.jpg"]

    applied = api.client.post(f"/api/v1/operations/{op_id}/apply", headers=admin.headers)
    assert applied.status_code == 202, applied.text
    assert _finished(api, admin, op_id)["state"] == "applied"
    assert (root / moved["notes.txt"]).is_file()
    assert not (root / "notes.txt").exists()
    report = api.client.get(f"/api/v1/operations/{op_id}/report", headers=admin.headers).json()
    assert report["apply"]["done"] == len(moved)

    undo = api.client.post(f"/api/v1/operations/{op_id}/rollback", headers=admin.headers)
    assert undo.status_code == 202, undo.text
    rolled = _finished(api, admin, undo.json()["operation_id"])
    assert rolled["state"] == "rolled_back"
    assert without_dir_inodes(snapshot(root)) == without_dir_inodes(before)
