"""The organize flow on buckets (moto's S3 server), in-process under the session's Prefect
server: a dry run changes nothing and finds duplicates by content; manifests can live on S3."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.organize import organize_flow
from storage import operations, queries
from storage.errors import InvalidPlanOptions
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.settings import get_settings
from tests.conftest import S3Env

BODY = bytes(range(256)) * 40  # more than one hash prefix


def exif_jpeg(original: str) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "fileorg-test"  # Make
    exif.get_ifd(0x8769)[36867] = original  # DateTimeOriginal
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 200, 30)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


JPEG = exif_jpeg("2019:04:12 15:30:00")
# key -> content; "backup/2019/report.pdf" is uploaded multipart (an ETag that is no MD5).
TREE: dict[str, bytes] = {
    "photos/IMG_0001.jpg": JPEG,
    "dir one/été 2019.jpg": JPEG,
    "docs/report.pdf": BODY,
    "backup/2019/report.pdf": BODY,
    "docs/other.pdf": BODY[:-1] + b"\x00",  # same size and prefix, other content
    "a/b/c/deep note.txt": b"deep",
    "notes 2020-01-02.txt": b"a note",
    "empty.txt": b"",
    "sub/empty two.txt": b"",
    "folder/": b"",  # a folder marker: never organized
}
MULTIPART = "backup/2019/report.pdf"
EXPECTED_GROUPS = {
    frozenset({"photos/IMG_0001.jpg", "dir one/été 2019.jpg"}),
    frozenset({"docs/report.pdf", "backup/2019/report.pdf"}),
}


def upload_tree(s3: S3Env, bucket: str, prefix: str = "") -> None:
    client = s3.client()
    for key, body in TREE.items():
        if key == MULTIPART:
            upload = client.create_multipart_upload(Bucket=bucket, Key=prefix + key)
            part = client.upload_part(
                Bucket=bucket,
                Key=prefix + key,
                UploadId=upload["UploadId"],
                PartNumber=1,
                Body=body,
            )
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=prefix + key,
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            )
        else:
            client.put_object(Bucket=bucket, Key=prefix + key, Body=body)


def bucket_snapshot(s3: S3Env, bucket: str) -> dict[str, tuple[str, str]]:
    """Every key with its ETag and the MD5 of its content."""
    client = s3.client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            out[item["Key"]] = (item["ETag"], hashlib.md5(body).hexdigest())
    return out


def group_paths(rows: list[dict[str, Any]]) -> set[frozenset[str]]:
    return {frozenset(p.decode() for p in r["paths"]) for r in rows}


def test_dry_run_on_a_bucket_finds_duplicates_and_changes_nothing(
    s3: S3Env, data_dir: Path
) -> None:
    bucket = s3.bucket("organize-bucket")
    upload_tree(s3, bucket)
    before = bucket_snapshot(s3, bucket)
    assert len({etag for etag, _ in (before["docs/report.pdf"], before[MULTIPART])}) == 2
    operation_id = str(uuid.uuid4())

    report = organize_flow(operation_id=operation_id, root=f"s3://{bucket}/")

    assert bucket_snapshot(s3, bucket) == before
    assert report["root"] == f"s3://{bucket}"
    assert report["files"] == len(TREE) - 1  # the folder marker is not a file
    assert report["duplicates"]["groups"] == 2
    assert report["duplicates"]["wasted_bytes"] == len(JPEG) + len(BODY)
    top = {frozenset(g["paths"]) for g in report["duplicates"]["top_groups"]}
    assert top == EXPECTED_GROUPS
    assert [e["path"] for e in report["errors"]["items"]] == ["folder/"]
    store = DataStore(str(data_dir))
    op_dir = store.operation_dir(operation_id)
    plan, _ = queries.plan_rows(store, op_dir, limit=None)
    dst = {r["src"].decode(): r["dst"] and r["dst"].decode() for r in plan}
    assert dst["dir one/été 2019.jpg"] == "Images/2019/été 2019.jpg"
    assert dst["folder/"] is None  # the marker is planned, as a skip
    assert operations.load(store, operation_id).status == "planned"


def test_hardlink_policy_is_refused_before_any_work(s3: S3Env, data_dir: Path) -> None:
    bucket = s3.bucket("organize-bucket")
    operation_id = str(uuid.uuid4())

    with pytest.raises(InvalidPlanOptions, match="hard-linked"):
        organize_flow(
            operation_id=operation_id,
            root=f"s3://{bucket}",
            options=PlanOptions(duplicates="hardlink"),
        )

    assert not operations.exists(DataStore(str(data_dir)), operation_id)


@pytest.fixture
def s3_data(s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> DataStore:
    """FILEORG_DATA_URL in a bucket."""
    s3.bucket("data-bucket")
    monkeypatch.setenv("FILEORG_DATA_URL", "s3://data-bucket/fileorg")
    get_settings.cache_clear()
    return DataStore("s3://data-bucket/fileorg")


def cli_json(*args: str) -> Any:
    from flows.cli import _register, app

    _register()
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_manifests_on_s3_serve_every_query(s3: S3Env, s3_data: DataStore, tmp_path: Path) -> None:
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "a.txt").write_bytes(b"same content")
    (local / "sub" / "b.txt").write_bytes(b"same content")
    (local / "c.txt").write_bytes(b"other content")
    # The bucket root holds the data folder too: its manifests must not be scanned.
    upload_tree(s3, "data-bucket")
    local_id, bucket_id = str(uuid.uuid4()), str(uuid.uuid4())

    organize_flow(operation_id=local_id, root=str(local))
    organize_flow(operation_id=bucket_id, root="s3://data-bucket")

    assert s3_data.exists(f"{s3_data.operation_dir(local_id)}/report.json")
    local_dir, bucket_dir = s3_data.operation_dir(local_id), s3_data.operation_dir(bucket_id)
    local_groups, _ = queries.duplicate_groups(s3_data, local_dir)
    assert group_paths(local_groups) == {frozenset({"a.txt", "sub/b.txt"})}
    bucket_groups, total = queries.duplicate_groups(s3_data, bucket_dir)
    assert (group_paths(bucket_groups), total) == (EXPECTED_GROUPS, 2)
    files, total = queries.file_rows(s3_data, bucket_dir, limit=None)
    assert {r["path"].decode() for r in files} == set(TREE) - {"folder/"}
    assert total == len(TREE) - 1
    images, _ = queries.file_rows(s3_data, bucket_dir, category="images")
    assert {(r["path"].decode(), r["date_source"]) for r in images} == {
        ("photos/IMG_0001.jpg", "exif"),
        ("dir one/été 2019.jpg", "exif"),
    }
    totals = queries.totals_by_category_year(s3_data, bucket_dir)
    assert sum(r["files"] for r in totals) == len(TREE) - 1
    plan, total = queries.plan_rows(s3_data, bucket_dir, limit=None)
    assert total == len(plan) >= len(TREE) - 1
    built = queries.listing_info(s3_data, bucket_dir)  # the listing manifest, in the bucket
    assert built is not None and (built["files"], built["plan"]) == (len(TREE) - 1, total)
    assert queries.plan_page(s3_data, bucket_dir, 500).rows == plan
    assert queries.files_page(s3_data, bucket_dir, 500).rows == files

    report = cli_json("report", bucket_id)
    assert (report["operation_id"], report["files"]) == (bucket_id, len(TREE) - 1)
    duplicates = cli_json("duplicates", bucket_id)
    assert {frozenset(g["paths"]) for g in duplicates["groups"]} == EXPECTED_GROUPS
    listed = cli_json("files", local_id)
    assert {i["path"] for i in listed["items"]} == {"a.txt", "sub/b.txt", "c.txt"}
    planned = cli_json("plan", bucket_id)
    assert planned["total"] == total
