"""A killed operation resumes: shards written before the kill are kept, the result is the same.

The organize runs in a `fileorg` subprocess that is SIGKILLed (no cleanup, no Prefect hooks)
as soon as its first prefix-hash shard exists. Small shards, one I/O process and one task
worker make the hash stages long sequences of shards, so the kill lands inside them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from flows.organize import organize_flow
from storage import operations, queries
from storage.locations import DataStore
from storage.settings import get_settings
from tests.polling import until

FILEORG = Path(sys.executable).parent / "fileorg"
SHARD_FILES = 50
FILE_SIZE = 8192  # over 4 KiB: every file goes through both passes
ATTEMPTS = (800, 3000, 10000)  # files; a bigger tree when a run finished before the kill


def make_wide_tree(root: Path, files: int) -> None:
    """`files` files of one size sharing their first 4 KiB, in pairs of equal content."""
    rng = random.Random(files)
    head = rng.randbytes(FILE_SIZE // 2)
    for i in range(files):
        if i % 2 == 0:
            tail = rng.randbytes(FILE_SIZE // 2)
        folder = root / f"d{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_bytes(head + tail)


def shard_files(op_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every finished shard of the operation, with the (inode, mtime_ns) it was written with."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(op_dir.rglob("part-*.parquet"))
    }


def start_organize(
    root: Path, data: Path, operation_id: str, prefect: str, output: Path
) -> subprocess.Popen[bytes]:
    """`fileorg organize --id` in its own session; stdout and stderr go to files (a pipe
    nobody reads while we poll could fill up and stall the run)."""
    env = {
        **os.environ,
        "FILEORG_DATA_URL": str(data),
        "PREFECT_API_URL": prefect,
        "FILEORG_HASH_SHARD_FILES": str(SHARD_FILES),
        "FILEORG_IO_PROCESSES": "1",
        "FILEORG_TASK_WORKERS": "1",
    }
    argv = [FILEORG, "organize", root, "--dry-run", "--json", "--id", operation_id]
    with open(f"{output}.out", "wb") as out, open(f"{output}.err", "wb") as err:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=err, start_new_session=True)


def kill_in_hash_stage(proc: subprocess.Popen[bytes], op_dir: Path) -> bool:
    """SIGKILL the run once a prefix shard exists; False if it finished first."""
    prefix = op_dir / "prefix"

    def seen() -> str | None:
        if proc.poll() is not None:
            return "finished"
        return "shard" if prefix.is_dir() and any(prefix.glob("part-*.parquet")) else None

    try:  # polled often: the hash stage of a small tree is short
        found = until(seen, 120, "a prefix shard or the end of the run", every=0.002)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return found == "shard"


def hash_stage_finished(data: Path, operation_id: str) -> bool:
    record = operations.load(DataStore(str(data)), operation_id)
    timing = record.stages.get("hash")
    return timing is not None and timing.seconds is not None


def groups(data: Path, operation_id: str) -> list[list[bytes]]:
    store = DataStore(str(data))
    rows, _ = queries.duplicate_groups(store, store.operation_dir(operation_id), limit=None)
    return sorted(row["paths"] for row in rows)


def test_killed_in_hash_stage_resumes_without_rewriting_finished_shards(
    tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for files in ATTEMPTS:
        root, data = tmp_path / f"root-{files}", tmp_path / f"data-{files}"
        make_wide_tree(root, files)
        data.mkdir()
        operation_id = str(uuid.uuid4())
        op_dir = data / "operations" / operation_id
        killed = kill_in_hash_stage(
            start_organize(root, data, operation_id, prefect_server, tmp_path / f"killed-{files}"),
            op_dir,
        )
        if killed and not hash_stage_finished(data, operation_id):
            break
    else:
        pytest.fail(f"every run finished its hash stage before the kill ({ATTEMPTS} files)")

    before = shard_files(op_dir)
    prefix_done = [p for p in before if p.parent.name == "prefix"]
    prefix_planned = sorted((op_dir / "prefix" / "_inputs").glob("part-*.parquet"))
    resumed = start_organize(root, data, operation_id, prefect_server, tmp_path / "resumed")
    resumed.wait(timeout=300)

    assert resumed.returncode == 0, (tmp_path / "resumed.err").read_text(errors="replace")
    assert json.loads((tmp_path / "resumed.out").read_bytes())["status"] == "planned"
    after = shard_files(op_dir)
    assert prefix_done
    assert {p: after.get(p) for p in before} == before
    assert set(after) > set(before)  # and the rest was done
    assert len([p for p in after if p.parent.name == "prefix"]) == len(prefix_planned)

    # A clean run of the same tree, in a data folder of its own (no hash cache to borrow).
    clean_data = tmp_path / "clean-data"
    clean_data.mkdir()
    monkeypatch.setenv("FILEORG_DATA_URL", str(clean_data))
    get_settings.cache_clear()
    clean_id = str(uuid.uuid4())
    try:
        organize_flow(operation_id=clean_id, root=str(root))
    finally:
        get_settings.cache_clear()

    resumed_groups = groups(data, operation_id)
    assert resumed_groups == groups(clean_data, clean_id)
    assert len(resumed_groups) == files // 2
