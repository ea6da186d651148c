"""The organize stages as plain functions, in the flow's order, on a `root` of either backend
(tests/roots.py): what the contract suites of scan, hash and classify run."""

from __future__ import annotations

import io
import uuid
from typing import Any

from PIL import Image

from storage import manifests, queries
from storage.leave_alone import ScanRules
from storage.locations import DataStore
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.hashes import stage as hashes
from tasks.scan import stage as scan


def exif_jpeg(original: str) -> bytes:
    """A small JPEG whose EXIF says it was taken at `original` ("2019:04:12 15:30:00")."""
    exif = Image.Exif()
    exif[0x010F] = "fileorg-test"  # Make
    exif.get_ifd(0x8769)[36867] = original  # DateTimeOriginal
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def new_op(store: DataStore) -> str:
    return store.operation_dir(str(uuid.uuid4()))


def scan_op(
    store: DataStore, url: str, shard_rows: int = 1000, rules: ScanRules = ScanRules()
) -> tuple[str, dict[str, int]]:
    """A new operation with its scan: its folder and the scan's counts."""
    op_dir = new_op(store)
    return op_dir, scan.scan_root(store, op_dir, backend_for(url), shard_rows, rules)


def classify_op(
    store: DataStore, op_dir: str, url: str, prev_dir: str | None = None
) -> dict[str, int]:
    """Classify every scan shard; the summed counts."""
    shards = int((manifests.done_info(store, op_dir, "scan") or {})["shards"])
    total: dict[str, int] = {}
    for index in range(shards):
        for key, n in classify.classify_shard(
            store, op_dir, index, backend_for(url), 1, prev_dir
        ).items():
            total[key] = total.get(key, 0) + n
    return total


def hash_op(
    store: DataStore, op_dir: str, url: str, prev_dir: str | None = None, shard_rows: int = 1000
) -> dict[str, int]:
    """Both hash passes, planned and run; the summed counts of their shards."""
    backend = backend_for(url)
    total: dict[str, int] = {}
    for pass_name in (hashes.PREFIX, hashes.FULL):
        if pass_name == hashes.PREFIX:
            shards = hashes.plan_prefix_inputs(store, op_dir, prev_dir, shard_rows, backend)
        else:
            shards = hashes.plan_full_inputs(store, op_dir, prev_dir, shard_rows, 1 << 40, backend)
        for index in range(shards):
            counts = hashes.hash_shard(store, op_dir, pass_name, index, backend, 1)
            for key, n in counts.items():
                total[key] = total.get(key, 0) + n
    return total


def stage_rows(store: DataStore, op_dir: str, stage: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in manifests.shard_paths(store, op_dir, stage):
        rows += manifests.read_table(store, path).to_pylist()
    return rows


def duplicate_groups(store: DataStore, op_dir: str) -> set[frozenset[bytes]]:
    rows, _ = queries.duplicate_groups(store, op_dir, limit=None)
    return {frozenset(r["paths"]) for r in rows}
