"""A re-run on an unchanged tree reuses the previous plan instead of planning again."""

from __future__ import annotations

import dataclasses
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.operations import PlanOptions
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.hashes import stage as hashes
from tasks.plan import stage as plan
from tasks.plan.facts import facts_table, fingerprint, load_stage_facts
from tasks.plan.planner import FileFacts
from tasks.scan import stage as scan

SHARD_ROWS = 3


def plan_stages(
    store: DataStore, root: Path, options: PlanOptions, prev_dir: str | None
) -> tuple[str, dict[str, Any]]:
    op_dir = store.operation_dir(str(uuid.uuid4()))
    backend = backend_for(str(root))
    scanned = scan.scan_root(store, op_dir, backend, SHARD_ROWS)
    for index in range(scanned["shards"]):
        classify.classify_shard(store, op_dir, index, backend, 1, prev_dir)
    for index in range(hashes.plan_prefix_inputs(store, op_dir, prev_dir, SHARD_ROWS, backend)):
        hashes.hash_shard(store, op_dir, hashes.PREFIX, index, backend, 1)
    for index in range(
        hashes.plan_full_inputs(store, op_dir, prev_dir, SHARD_ROWS, 1 << 40, backend)
    ):
        hashes.hash_shard(store, op_dir, hashes.FULL, index, backend, 1)
    return op_dir, plan.plan_operation(store, op_dir, options, SHARD_ROWS, backend, prev_dir)


def plan_bytes(store: DataStore, op_dir: str) -> list[bytes]:
    return [store.read_bytes(p) for p in manifests.shard_paths(store, op_dir, "plan")]


def make_tree(root: Path) -> None:
    (root / "in").mkdir(parents=True)
    for i in range(7):
        (root / "in" / f"photo-{i}.jpg").write_bytes(b"same" if i < 3 else b"x%d" % i)
    (root / "notes.txt").write_bytes(b"notes")


def test_an_unchanged_tree_reuses_the_plan_byte_for_byte(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    make_tree(tmp_path / "root")
    first_dir, first = plan_stages(store, tmp_path / "root", PlanOptions(), None)

    second_dir, second = plan_stages(store, tmp_path / "root", PlanOptions(), first_dir)

    assert second["reused_from"] == first_dir.rsplit("/", 1)[-1]
    assert second["fingerprint"] == first["fingerprint"]
    assert plan_bytes(store, second_dir) == plan_bytes(store, first_dir)


def test_a_changed_file_or_other_options_plan_afresh(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    root = tmp_path / "root"
    make_tree(root)
    first_dir, first = plan_stages(store, root, PlanOptions(), None)

    _, other_mode = plan_stages(store, root, PlanOptions(mode="year_month"), first_dir)
    os.utime(root / "notes.txt", ns=(10**18, 10**18))
    changed_dir, changed = plan_stages(store, root, PlanOptions(), first_dir)

    assert "reused_from" not in other_mode
    assert other_mode["fingerprint"] != first["fingerprint"]
    assert "reused_from" not in changed
    assert changed["fingerprint"] != first["fingerprint"]
    assert plan_bytes(store, changed_dir) != plan_bytes(store, first_dir)


def test_scan_shards_written_before_owners_were_recorded_still_plan(tmp_path: Path) -> None:
    """Shards without uid and gid read them as NULL (no owner, as an object's), and a re-scan
    next to such an operation reuses what it can and plans as before."""
    store = DataStore(str(tmp_path / "data"))
    root = tmp_path / "root"
    make_tree(root)
    first_dir, _ = plan_stages(store, root, PlanOptions(duplicates="hardlink"), None)
    for shard in manifests.shard_paths(store, first_dir, "scan"):
        old = manifests.read_table(store, shard)
        manifests.write_table(store, shard, old.drop_columns(["uid", "gid"]))
    with duckdb.connect() as con:
        load_stage_facts(con, store, first_dir, include_empty=False)
        owners = con.execute("SELECT DISTINCT owner FROM facts").fetchall()

    second_dir, _ = plan_stages(store, root, PlanOptions(duplicates="hardlink"), first_dir)

    assert owners == [(None,)]
    st = os.lstat(root / "notes.txt")
    scanned = pa.concat_tables(
        manifests.read_table(store, shard)
        for shard in manifests.shard_paths(store, second_dir, "scan")
    )
    assert set(scanned["uid"].to_pylist()) == {st.st_uid}
    assert set(scanned["gid"].to_pylist()) == {st.st_gid}
    assert plan_bytes(store, second_dir) == plan_bytes(store, first_dir)


def _stamp(files: list[FileFacts], header: bytes = b"options") -> str:
    con = duckdb.connect()
    try:
        con.register("facts_arrow", facts_table(files))
        con.execute("CREATE TABLE facts AS SELECT * FROM facts_arrow")
        return fingerprint(con, header)
    finally:
        con.close()


BASE = FileFacts(
    path=b"in/a.jpg", kind="file", size=7, mtime_ns=5, dev=1, ino=2, category="images",
    ext="jpg", date=datetime(2019, 4, 12), digest=b"\x01" * 32, error=None,
    date_source="exif", artist="A", album="B", left_alone=None, rule=None, mode=0o644,
    owner="0:0",
)  # fmt: skip
OTHER = FileFacts(b"z.txt", "file", size=3, ino=9)
# Each column changed on its own (None where a column may be missing).
CHANGED: dict[str, list[object]] = {
    "path": [b"in/A.jpg", b"in/a.jpg\xff"],
    "kind": ["symlink"],
    "size": [8],
    "mtime_ns": [6],
    "dev": [2],
    "ino": [3],
    "category": ["videos"],
    "ext": ["png"],
    "date": [datetime(2019, 4, 12, 0, 0, 1), None],
    "digest": [b"\x02" * 32, None],
    "error": ["boom"],
    "date_source": ["mtime", ""],
    "artist": ["a", None],
    "album": ["b", None],
    "left_alone": ["hidden"],
    "rule": ["x"],
    "mode": [0o600],
    "owner": ["1000:0", None],
}


def test_the_fingerprint_changes_with_every_column_the_planner_reads() -> None:
    assert set(CHANGED) == {f.name for f in dataclasses.fields(FileFacts)}
    first = _stamp([BASE, OTHER])
    assert _stamp([OTHER, BASE]) == first  # the order rows come in does not count
    seen = {first}
    for name, values in CHANGED.items():
        for value in values:
            stamp = _stamp([dataclasses.replace(BASE, **{name: value}), OTHER])
            assert stamp not in seen, (name, value)
            seen.add(stamp)
    assert _stamp([BASE, OTHER], b"other options") not in seen
    assert _stamp([BASE]) not in seen


def test_the_fingerprint_header_holds_the_options_the_version_and_the_device() -> None:
    headers = {
        plan.fingerprint_header(PlanOptions(), 1),
        plan.fingerprint_header(PlanOptions(), 2),
        plan.fingerprint_header(PlanOptions(), None),
        plan.fingerprint_header(PlanOptions(mode="year_month"), 1),
        plan.fingerprint_header(PlanOptions(include_empty=True), 1),
    }
    assert len(headers) == 5
    assert str(plan.PLANNER_VERSION).encode() in plan.fingerprint_header(PlanOptions(), 1)
