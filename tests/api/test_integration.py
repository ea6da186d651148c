"""End to end: the API, a real Prefect server and a runner serving the deployments.

Sign up (the first account is the admin), grant a root, start a dry run on a real tree, wait
for it, read the plan, apply it, read the report, roll it back: the tree is as it was.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.deps import settings_of
from storage import operations
from tests.api.stack import dry_run_started, finished, make_tree
from tests.trees import snapshot, without_dir_inodes


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_dry_run_apply_and_rollback_through_the_api(
    make_api: Any, runner: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    make_tree(root)
    before = snapshot(root)

    api, admin, op_id = dry_run_started(make_api, root)
    planned = finished(api, admin, op_id)
    assert planned["state"] == "planned"
    assert snapshot(root) == before  # a dry run changes nothing
    # the record names its owner, from the API's ticket: the CLI's `last` is never this one
    store = settings_of(api.client.app).store()  # type: ignore[arg-type]
    assert operations.load(store, op_id).owner == admin.id

    plan = api.client.get(f"/api/v1/operations/{op_id}/plan", headers=admin.headers).json()
    moved = {item["src"]: item["dst"] for item in plan["data"] if item["action"] == "move"}
    assert moved["notes.txt"].startswith("Documents/")
    dupes = api.client.get(f"/api/v1/operations/{op_id}/duplicates", headers=admin.headers)
    assert dupes.json()["data"][0]["paths"] == ["inbox/holiday (1).jpg", "inbox/holiday.jpg"]

    applied = api.client.post(f"/api/v1/operations/{op_id}/apply", headers=admin.headers)
    assert applied.status_code == 202, applied.text
    assert finished(api, admin, op_id)["state"] == "applied"
    assert (root / moved["notes.txt"]).is_file()
    assert not (root / "notes.txt").exists()
    report = api.client.get(f"/api/v1/operations/{op_id}/report", headers=admin.headers).json()
    assert report["apply"]["done"] == len(moved)

    undo = api.client.post(f"/api/v1/operations/{op_id}/rollback", headers=admin.headers)
    assert undo.status_code == 202, undo.text
    rolled = finished(api, admin, undo.json()["operation_id"])
    assert rolled["state"] == "rolled_back"
    assert without_dir_inodes(snapshot(root)) == without_dir_inodes(before)
