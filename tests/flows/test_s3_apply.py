"""The round trip on a bucket through the real flows: organize (dry run), apply-plan, rollback.

The bucket holds duplicates, nested prefixes, keys with spaces and unicode, zero-byte objects
and a multipart object, under the root and beside it. After the apply every planned key has
moved to its destination with its content; after the rollback the bucket's keys and contents
are exactly what they were, and so are the ETags of single-part objects (a multipart ETag is
not an MD5 and does not survive a copy as one PUT).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from flows.apply import APPLY_KEYS, apply_plan_flow, rollback_flow
from flows.organize import organize_flow
from storage import operations, queries
from storage.journal import applied_journals, read_journal
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.settings import get_settings
from tests.conftest import S3Env

BUCKET = "library-bucket"
ROOT = f"s3://{BUCKET}/library"
BODY = bytes(range(256)) * 40
TREE: dict[str, bytes] = {
    "library/photos/IMG 0001.jpg": b"\xff\xd8\xff\xe0" + BODY,
    "library/dir one/\u00e9t\u00e9 2019/IMG 0001 copy.jpg": b"\xff\xd8\xff\xe0" + BODY,
    "library/docs/report 2020-01-02.pdf": b"%PDF-1.4 report",
    "library/a/b/c/deep note \u2603.txt": b"deep",
    "library/a/b/c/same note.txt": b"deep",
    "library/empty.txt": b"",
    "library/sub/empty two.txt": b"",
    "library/backup/big.bin": BODY * 3,
    "beside the root.txt": b"not under the root",
}
MULTIPART = "library/backup/big.bin"


def upload(s3: S3Env) -> None:
    client = s3.client()
    s3.bucket(BUCKET)
    for key, body in TREE.items():
        if key != MULTIPART:
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
            continue
        upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)
        part = client.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=body
        )
        client.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )


def bucket(s3: S3Env) -> dict[str, tuple[bytes, str]]:
    """Every key but the data folder's, with its content and ETag."""
    client = s3.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith("fileorg/"):
                body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                found[obj["Key"]] = (body, obj["ETag"].strip('"'))
    return found


def without_multipart_etag(keys: dict[str, tuple[bytes, str]]) -> dict[str, tuple[bytes, str]]:
    return {k: (body, "" if k == MULTIPART else etag) for k, (body, etag) in keys.items()}


@pytest.fixture(params=["report-local-data", "quarantine-s3-data"])
def case(
    request: pytest.FixtureRequest, s3: S3Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, DataStore]:
    """A duplicates policy and a data folder: on local disk, or in the bucket (journals then
    written as segment objects)."""
    policy, _, where = str(request.param).partition("-")
    data_url = f"s3://{BUCKET}/fileorg" if where == "s3-data" else str(tmp_path / "data")
    monkeypatch.setenv("FILEORG_DATA_URL", data_url)
    get_settings.cache_clear()
    return policy, DataStore(data_url)


def test_round_trip_on_a_bucket_ends_with_the_keys_it_began_with(
    s3: S3Env, case: tuple[str, DataStore]
) -> None:
    policy, store = case
    upload(s3)
    before = bucket(s3)
    operation_id = str(uuid.uuid4())

    report = organize_flow(
        operation_id=operation_id, root=ROOT, options=PlanOptions(duplicates=policy)
    )
    assert bucket(s3) == before  # the dry run changed nothing
    op_dir = store.operation_dir(operation_id)
    plan, _ = queries.plan_rows(store, op_dir, limit=None)
    moving = {
        f"library/{r['src'].decode()}": f"library/{r['dst'].decode()}"
        for r in plan
        if r["action"] in ("move", "quarantine")
    }
    applied = apply_plan_flow(operation_id=operation_id)
    during = bucket(s3)
    journals = applied_journals(store, op_dir)
    _, outcome_applied = queries.plan_rows(store, op_dir, outcome="applied")  # from the journals
    result = rollback_flow(operation_id=operation_id)
    after = bucket(s3)
    _, outcome_restored = queries.plan_rows(store, op_dir, outcome="restored")

    quarantined = sum(1 for r in plan if r["action"] == "quarantine")
    assert quarantined == (2 if policy == "quarantine" else 0)
    assert report["plan"]["moves"] + quarantined == len(moving) >= 6
    assert applied["apply"] == {k: len(moving) if k == "done" else 0 for k in APPLY_KEYS}
    assert operations.load(store, operation_id).status == "rolled_back"
    expected_during = {moving.get(key, key): body for key, (body, _) in before.items()}
    assert {k: body for k, (body, _) in during.items()} == expected_during
    assert all(
        moving[f"library/{r['src'].decode()}"].startswith("library/.duplicates/")
        for r in plan
        if r["action"] == "quarantine"
    )
    assert result["undone"] == len(moving) and result["refused"] == 0
    assert outcome_applied == outcome_restored == len(moving)
    assert without_multipart_etag(after) == without_multipart_etag(before)
    assert after[MULTIPART][0] == before[MULTIPART][0]
    if store.is_local:
        assert [j.rsplit("/", 1)[-1] for j in journals] == ["move-00000.jsonl"]
    else:
        assert journals[0].startswith(f"s3://{BUCKET}/fileorg/operations/{operation_id}/")
        assert any(s3_key.endswith(".jsonl.d/00000000.jsonl") for s3_key in segment_keys(s3))
    assert {e["phase"] for e in read_journal(journals[0])} >= {"intent", "copied", "done"}


def segment_keys(s3: S3Env) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="fileorg/")
    return [obj["Key"] for obj in listed.get("Contents", [])]


@pytest.mark.parametrize("how", ["edited", "deleted"])
def test_a_duplicate_is_quarantined_only_while_its_kept_object_is_unchanged(
    s3: S3Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The photo group's kept object is edited or deleted between plan and apply: its copy
    stays where it is (moved to .duplicates/, it would be the only one, hidden); the note
    group's kept object is untouched and its copy is quarantined (it moves in the same
    apply, in the same batch)."""
    monkeypatch.setenv("FILEORG_DATA_URL", str(tmp_path / "data"))
    get_settings.cache_clear()
    store = DataStore(str(tmp_path / "data"))
    upload(s3)
    operation_id = str(uuid.uuid4())
    organize_flow(
        operation_id=operation_id, root=ROOT, options=PlanOptions(duplicates="quarantine")
    )
    plan, _ = queries.plan_rows(store, store.operation_dir(operation_id), limit=None)
    twins = {r["src"]: r["twin"] for r in plan if r["action"] == "quarantine"}
    (photo,) = [src for src in twins if src.endswith(b".jpg")]
    (note,) = [src for src in twins if src.endswith(b".txt")]
    kept_key = f"library/{twins[photo].decode()}"
    client = s3.client()
    if how == "edited":
        client.put_object(Bucket=BUCKET, Key=kept_key, Body=b"\xff\xd8\xff\xe0 edited")
    else:
        client.delete_object(Bucket=BUCKET, Key=kept_key)

    apply_plan_flow(operation_id=operation_id)

    after = bucket(s3)
    assert after[f"library/{photo.decode()}"][0] == b"\xff\xd8\xff\xe0" + BODY  # stayed
    assert f"library/.duplicates/{photo.decode()}" not in after
    assert f"library/{note.decode()}" not in after
    assert after[f"library/.duplicates/{note.decode()}"][0] == b"deep"
    rows, _ = queries.outcome_sample(
        store, store.operation_dir(operation_id), ("skipped",), 10, "apply"
    )
    reasons = {r["src"]: r["outcome_reason"] for r in rows}
    expected_reason = "the kept copy changed or vanished since scan: not quarantined"
    assert reasons[photo] == expected_reason
