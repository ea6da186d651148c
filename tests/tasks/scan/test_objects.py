"""The scan of a bucket, against moto's S3 server: pagination, row fields, folder markers,
versions, the data folder (what holds on both backends: test_contract.py)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from storage import manifests, objects
from storage.locations import DataStore
from tasks.backends import backend_for
from tasks.scan import stage as scan
from tasks.scan.objects import data_prefix_in_root, object_ino
from tests.conftest import S3Env
from tests.tasks.buckets import (
    BUCKET,
    put,
)
from tests.tasks.pipeline import new_op, stage_rows

SHOT = datetime(2019, 4, 12, 15, 30, 0)
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def test_scan_lists_every_page_into_shards(s3: S3Env, bucket: str, store: DataStore) -> None:
    # Written straight into moto's in-process backend: 1,005 PUTs through HTTP take seconds.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(1005):
        backend.put_object(BUCKET, f"many/d{i % 3}/f{i:05d}", b"x" * (i % 7))
    put(s3, "manyX/outside", b"not under the root")
    op_dir = new_op(store)
    before = objects.REQUESTS["list_objects_v2"]

    info = scan.scan_root(store, op_dir, backend_for(f"s3://{BUCKET}/many"), 400)

    assert objects.REQUESTS["list_objects_v2"] - before == 2  # 1,000 keys a request
    tables = [manifests.read_table(store, p) for p in manifests.shard_paths(store, op_dir, "scan")]
    assert [t.num_rows for t in tables] == [400, 400, 205]
    paths = [p for t in tables for p in t.column("path").to_pylist()]
    expected_paths = sorted(f"d{i % 3}/f{i:05d}".encode() for i in range(1005))
    assert paths == expected_paths
    assert info == {
        "shards": 3,
        "entries": 1005,
        "files": 1005,
        "bytes": sum(i % 7 for i in range(1005)),
        "errors": 0,
        "left_alone": 0,
        "root_dev": 0,
    }
    assert manifests.done_info(store, op_dir, "scan") == info


def test_scan_rows_follow_the_object_conventions(s3: S3Env, bucket: str, store: DataStore) -> None:
    etag = put(s3, "photos/dir one/été 2019.jpg", b"hello")
    for key in ("photos/dir one/", "photos/a//b", "photos/./x", "photos/../y"):
        put(s3, key, b"")
    op_dir = new_op(store)

    scan.scan_root(store, op_dir, backend_for(f"s3://{BUCKET}/photos"), 100)

    rows = {r["path"]: r for r in stage_rows(store, op_dir, "scan")}
    assert set(rows) == {"dir one/été 2019.jpg".encode(), b"dir one/", b"a//b", b"./x", b"../y"}
    head = s3.client().head_object(Bucket=BUCKET, Key="photos/dir one/été 2019.jpg")
    row = rows["dir one/été 2019.jpg".encode()]
    assert row["path_text"] == "dir one/été 2019.jpg"
    assert (row["kind"], row["size"], row["error"]) == ("file", 5, None)
    assert row["mtime_ns"] == int(head["LastModified"].timestamp()) * 1_000_000_000
    assert (row["dev"], row["ino"], row["nlink"]) == (0, object_ino(row_key(row), etag), 1)
    assert (row["etag"], row["version_id"]) == (etag, None)
    assert row["mode"] == 0o100644
    for path in (b"dir one/", b"a//b", b"./x", b"../y"):
        assert rows[path]["kind"] == "other"
        assert rows[path]["error"]


def row_key(row: dict[str, Any]) -> str:
    return "photos/" + row["path"].decode()


def test_object_ino_names_one_version_of_one_key() -> None:
    ino = object_ino("a/b.jpg", "etag1")
    assert 0 <= ino < 1 << 63
    assert ino == object_ino("a/b.jpg", "etag1")
    assert len({ino, object_ino("a/b.jpg", "etag2"), object_ino("a/c.jpg", "etag1")}) == 3


def test_versioned_bucket_rows_carry_current_version_ids(
    s3: S3Env, bucket: str, store: DataStore
) -> None:
    client = s3.client()
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put(s3, "v/a.txt", b"first")
    current = client.put_object(Bucket=BUCKET, Key="v/a.txt", Body=b"second")
    put(s3, "v/gone.txt", b"deleted later")
    client.delete_object(Bucket=BUCKET, Key="v/gone.txt")
    op_dir = new_op(store)

    scan.scan_root(store, op_dir, backend_for(f"s3://{BUCKET}/v"), 100)

    rows = stage_rows(store, op_dir, "scan")
    assert [(r["path"], r["size"], r["version_id"]) for r in rows] == [
        (b"a.txt", 6, current["VersionId"])
    ]
    assert rows[0]["etag"] == hashlib.md5(b"second").hexdigest()


def test_scan_skips_the_data_folder_inside_the_root(s3: S3Env, bucket: str) -> None:
    put(s3, "kept.txt", b"k")
    put(s3, "fileorg/operations/x/scan/part-00000.parquet", b"manifest")

    skip = data_prefix_in_root(f"s3://{BUCKET}", f"s3://{BUCKET}/fileorg")

    assert skip == [b"fileorg/"]  # its one `dir` row: scan/test_contract.py
    # The same store through another profile with the same endpoint is the same bucket.
    assert data_prefix_in_root(f"r2://{BUCKET}", f"s3://{BUCKET}/fileorg") == [b"fileorg/"]
    assert data_prefix_in_root(f"s3://{BUCKET}/fileorg", f"s3://{BUCKET}/fileorg") == [
        b"operations/"
    ]
    assert data_prefix_in_root(f"s3://{BUCKET}/photos", f"s3://{BUCKET}/fileorg") == []
    assert data_prefix_in_root(f"s3://{BUCKET}", "s3://other-bucket/fileorg") == []
    assert data_prefix_in_root(f"s3://{BUCKET}", "/var/lib/fileorg") == []
