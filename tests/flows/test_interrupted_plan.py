"""A Ctrl-C can land anywhere in the main thread, Prefect's task engine included: landed there
before a task run exists, Prefect's crash handling raises `ValueError: Task run is not set`
in its place (prefect.task_engine, 3.9.1). The organize flow still records an interruption,
not a failure, and ends with the KeyboardInterrupt it was."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import task_engine

from flows.organize import organize_flow
from storage import operations
from storage.locations import DataStore
from storage.paths import to_param


def test_a_ctrl_c_before_a_task_run_exists_is_an_interrupted_plan(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    create = task_engine._create_task_run_locally

    def interrupted_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(task_engine, "_create_task_run_locally", create)
        raise KeyboardInterrupt  # where the CLI's SIGINT handler raises it, at that moment

    monkeypatch.setattr(task_engine, "_create_task_run_locally", interrupted_once)
    op = str(uuid.uuid4())

    with pytest.raises(KeyboardInterrupt) as raised:
        organize_flow(operation_id=op, root=to_param(str(root)))
    record = operations.load(DataStore(str(data_dir)), op)

    prefects = raised.value.__cause__  # what Prefect's engine raised: the case did happen
    assert isinstance(prefects, ValueError) and str(prefects) == "Task run is not set"
    assert (record.status, record.stage) == ("interrupted", "scan")
    assert record.error == (
        f"interrupted: nothing in {record.root} was changed; resume it: "
        f"the same organize again with --id {op}"
    )
