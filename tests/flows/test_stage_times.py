"""Every second of an organize run is some stage's: the listing manifest's build is timed with
the plan it pages through, not between the plan and the report where no stage counted it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import flows.organize
from flows.organize import organize_flow
from storage import operations
from storage.locations import DataStore
from storage.paths import to_param


def test_the_listing_build_is_timed_inside_the_plan_stage(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    for name in ("a.txt", "b.jpg", "c.pdf"):
        (root / name).write_text(name)
    store, op = DataStore(str(data_dir)), str(uuid.uuid4())
    build = flows.organize.listing_task
    seen: list[tuple[str | None, float | None]] = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        record = operations.load(store, op)  # as the stage saved it when it began
        seen.append((record.stage, record.stages["plan"].seconds))
        return build(*args, **kwargs)

    monkeypatch.setattr(flows.organize, "listing_task", watched)
    organize_flow(operation_id=op, root=to_param(str(root)))

    assert seen == [("plan", None)]  # built once, while the plan stage's clock still ran
    record = operations.load(store, op)
    assert record.stages["plan"].seconds is not None and record.status == "planned"
