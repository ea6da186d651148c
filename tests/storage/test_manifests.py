"""Parquet manifests: schemas round-trip exactly (byte paths included) on every backend."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage import manifests
from storage.locations import DataStore

OP_ID = "0d2b6c4e-7a51-4f0e-8c3a-9e1f2d3c4b5a"
ODD_PATHS = [
    b"plain.txt",
    b"caf\xe9/\xff\xfe.bin",  # not UTF-8
    "日本/写真.jpg".encode(),
    b"L" * 255,
    b"a\\b/with 'quote\".txt",
]


def scan_table(paths: list[bytes]) -> pa.Table:
    n = len(paths)
    return pa.Table.from_pydict(
        {
            "path": paths,
            "path_text": [p.decode("utf-8", "backslashreplace") for p in paths],
            "kind": ["file"] * n,
            "size": list(range(n)),
            "mtime_ns": [1_700_000_000_000_000_000 + i for i in range(n)],
            "dev": [2**64 - 1] * n,  # unsigned: st_dev can use the top bit
            "ino": list(range(1, n + 1)),
            "nlink": [1] * n,
            "mode": [0o100644] * n,
            "uid": [1000] * n,
            "gid": [None] * n,
            "link_target": [None] * n,
            "error": [None] * n,
            "etag": [None] * n,
            "version_id": [None] * n,
            "left_alone": ["hidden"] + [None] * (n - 1) if n else [],
            "rule": [".bashrc"] + [None] * (n - 1) if n else [],
        },
        schema=manifests.SCAN,
    )


def test_scan_shards_round_trip_byte_paths(store: DataStore) -> None:
    op = store.operation_dir(OP_ID)
    table = scan_table(ODD_PATHS)
    path = manifests.shard_path(op, "scan", 3)

    manifests.write_table(store, path, table)
    back = manifests.read_table(store, path)

    assert back.schema == manifests.SCAN
    assert back.to_pylist() == table.to_pylist()
    assert back.column("path").to_pylist() == ODD_PATHS
    assert manifests.read_table(store, path, columns=["path"]).column_names == ["path"]


def test_plan_shards_round_trip_nulls(store: DataStore) -> None:
    row = {
        "src": b"in/\xff.jpg",
        "dst": None,
        "action": "skip",
        "reason": "symlink: never followed",
        "size": 0,
        "mtime_ns": 0,
        "dev": 1,
        "ino": 2,
        "category": None,
        "year": None,
        "digest": None,
        "link_to": None,
        "reason_code": "symlink",
        "kind": "symlink",
        "unit": None,
        "twin": None,
        "date_source": None,
    }
    path = manifests.shard_path(store.operation_dir(OP_ID), "plan", 0)

    manifests.write_table(store, path, pa.Table.from_pylist([row], schema=manifests.PLAN))

    assert manifests.read_table(store, path).to_pylist() == [row]


def test_classify_shards_keep_dates(store: DataStore) -> None:
    row = {
        "path": b"x.jpg",
        "category": "images",
        "ext": "jpg",
        "date": datetime(2019, 4, 12, 15, 30, 0, 123456),
        "date_source": "exif",
        "year": 2019,
        "month": 4,
        "error": None,
        "artist": None,
        "album": None,
        "prefix": bytes(range(32)),
    }
    path = manifests.shard_path(store.operation_dir(OP_ID), "classify", 0)

    manifests.write_table(store, path, pa.Table.from_pylist([row], schema=manifests.CLASSIFY))

    assert manifests.read_table(store, path).to_pylist() == [row]


def test_shard_names_sort_in_index_order() -> None:
    names = [manifests.shard_name(i) for i in (0, 9, 10, 99_999)]

    assert names == sorted(names)
    assert manifests.shard_path("op", "hash/_inputs", 7) == "op/hash/_inputs/part-00007.parquet"


def test_shard_paths_lists_only_the_stage_shards(store: DataStore) -> None:
    op = store.operation_dir(OP_ID)
    for index in (2, 0, 1):
        manifests.write_table(store, manifests.shard_path(op, "hash", index), scan_table([]))
    manifests.write_table(store, manifests.shard_path(op, "hash/_inputs", 0), scan_table([]))
    manifests.mark_done(store, op, "hash", {"shards": 3})

    shards = manifests.shard_paths(store, op, "hash")

    assert [s.rsplit("/", 1)[1] for s in shards] == [manifests.shard_name(i) for i in range(3)]


def test_done_info_round_trip(store: DataStore) -> None:
    op = store.operation_dir(OP_ID)
    assert manifests.done_info(store, op, "scan") is None

    manifests.mark_done(store, op, "scan", {"shards": 2, "files": 10})

    assert manifests.done_info(store, op, "scan") == {"shards": 2, "files": 10}


def test_a_local_shard_is_written_under_its_name_only(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path))
    path = manifests.shard_path(str(tmp_path), "scan", 0)

    manifests.write_table(store, path, scan_table(ODD_PATHS))

    assert os.listdir(tmp_path / "scan") == ["part-00000.parquet"]


def test_the_report_reads_back_as_written_and_is_none_before(store: DataStore) -> None:
    op_dir = store.operation_dir(OP_ID)
    assert manifests.read_report(store, op_dir) is None
    built = {"operation_id": "x", "files": 3, "by_category": {"Photos": {"files": 3}}}
    manifests.write_report(store, op_dir, built)
    assert manifests.read_report(store, op_dir) == built
    assert store.exists(f"{op_dir}/{manifests.REPORT}")


def test_distinct_columns_are_written_without_a_dictionary(store: DataStore) -> None:
    path = manifests.shard_path(store.operation_dir(OP_ID), "scan", 0)
    manifests.write_table(store, path, scan_table(ODD_PATHS * 50))

    chunks = pq.ParquetFile(store.fs.open(path)).metadata.row_group(0)
    encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(15)}
    assert all("RLE_DICTIONARY" not in encodings[c] for c in ("path", "path_text", "ino"))
    assert "RLE_DICTIONARY" in encodings["kind"] and "RLE_DICTIONARY" in encodings["dev"]
