from __future__ import annotations

import uuid
from pathlib import Path

from flows.organize import organize_flow
from storage import operations
from storage.locations import DataStore


def test_organize_flow_plans_a_small_tree(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.txt").write_bytes(b"same")
    (root / "y.txt").write_bytes(b"same")
    (root / "photo.jpg").write_bytes(b"not really a jpeg")
    op_id = str(uuid.uuid4())

    report = organize_flow(operation_id=op_id, root=str(root))

    expected_duplicate_groups = 1
    assert report["duplicates"]["groups"] == expected_duplicate_groups
    assert report["files"] == 3
    record = operations.load(DataStore(str(data_dir)), op_id)
    assert record.status == "planned"
    assert set(record.stages) >= {"scan", "classify", "prefix", "hash", "plan", "report"}
