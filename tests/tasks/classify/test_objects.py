"""Classifying a bucket, against moto's S3 server: only ranged heads of images and unknown
keys are read, a changed object is an error row, unchanged objects are not read again (what
holds on both backends: test_contract.py)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from storage.locations import DataStore
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.classify.content import EXIF_BYTES, MAGIC_BYTES
from tasks.scan import stage as scan
from tests.conftest import S3Env
from tests.tasks.buckets import (
    BUCKET,
    GetLog,
    put,
)
from tests.tasks.pipeline import exif_jpeg, new_op, stage_rows

SHOT = datetime(2019, 4, 12, 15, 30, 0)
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def test_classify_reads_only_ranged_heads_of_images_and_unknown_keys(
    s3: S3Env, bucket: str, store: DataStore, gets: GetLog
) -> None:
    jpeg = exif_jpeg("2019:04:12 15:30:00")
    put(s3, "c/camera/IMG_0001.jpg", jpeg)
    put(s3, "c/notes/2018-03-04 minutes.txt", b"minutes")
    put(s3, "c/blob", PDF_HEAD + b"\0" * 20_000)
    put(s3, "c/clip.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 100)
    put(s3, "c/empty.png", b"")
    op_dir = new_op(store)
    scan.scan_root(store, op_dir, backend_for(f"s3://{BUCKET}/c"), 100)

    classify.classify_shard(store, op_dir, 0, backend_for(f"s3://{BUCKET}/c"), 1)

    rows = {r["path"]: r for r in stage_rows(store, op_dir, "classify")}
    jpg = rows[b"camera/IMG_0001.jpg"]
    assert (jpg["category"], jpg["date"], jpg["date_source"]) == ("images", SHOT, "exif")
    assert (jpg["year"], jpg["month"], jpg["error"]) == (2019, 4, None)
    assert rows[b"notes/2018-03-04 minutes.txt"]["date_source"] == "filename"
    assert rows[b"blob"]["category"] == "documents"  # magic bytes
    assert (rows[b"clip.mp4"]["category"], rows[b"clip.mp4"]["date_source"]) == (
        "videos",
        "mtime",
    )
    # One conditional ranged GET per object that needs content; none for the others.
    assert gets.keys == Counter({"c/camera/IMG_0001.jpg": 1, "c/blob": 1})
    ranges = {c["Key"]: c["Range"] for c in gets.calls}
    assert ranges == {
        "c/camera/IMG_0001.jpg": f"bytes=0-{min(len(jpeg), EXIF_BYTES) - 1}",
        "c/blob": f"bytes=0-{MAGIC_BYTES - 1}",
    }
    assert all(c["IfMatch"].strip('"') for c in gets.calls)


def test_classify_of_an_object_changed_since_the_scan_is_an_error_row(
    s3: S3Env, bucket: str, store: DataStore
) -> None:
    put(s3, "c/photo.jpg", exif_jpeg("2019:04:12 15:30:00"))
    op_dir = new_op(store)
    scan.scan_root(store, op_dir, backend_for(f"s3://{BUCKET}/c"), 100)
    put(s3, "c/photo.jpg", exif_jpeg("2001:01:01 00:00:00"))

    classify.classify_shard(store, op_dir, 0, backend_for(f"s3://{BUCKET}/c"), 1)

    [row] = stage_rows(store, op_dir, "classify")
    assert row["error"] == "read: changed since scan"
    assert (row["category"], row["date_source"]) == ("images", "mtime")


def test_classify_reuses_unchanged_objects(
    s3: S3Env, bucket: str, store: DataStore, gets: GetLog
) -> None:
    put(s3, "c/a.jpg", exif_jpeg("2019:04:12 15:30:00"))
    put(s3, "c/b.jpg", exif_jpeg("2019:04:12 15:30:00"))
    root = f"s3://{BUCKET}/c"
    first = new_op(store)
    scan.scan_root(store, first, backend_for(root), 100)
    classify.classify_shard(store, first, 0, backend_for(root), 1)
    put(s3, "c/b.jpg", exif_jpeg("2001:02:03 04:05:06"))
    gets.calls.clear()

    second = new_op(store)
    scan.scan_root(store, second, backend_for(root), 100)
    counts = classify.classify_shard(store, second, 0, backend_for(root), 1, first)

    assert counts == {"files": 2, "cached": 1, "skipped_shard": 0}
    assert gets.keys == Counter({"c/b.jpg": 1})
    dates = {r["path"]: r["date"] for r in stage_rows(store, second, "classify")}
    assert dates == {b"a.jpg": SHOT, b"b.jpg": datetime(2001, 2, 3, 4, 5, 6)}
