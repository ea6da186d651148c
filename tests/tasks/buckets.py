"""Objects for the bucket-only stage tests: puts straight to moto, the GETs a stage makes,
and the organize stages run on a bucket root (tests/tasks/<stage>/test_objects.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from storage.locations import DataStore
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.hashes import stage as hashes
from tasks.scan import stage as scan
from tests.conftest import S3Env
from tests.tasks.pipeline import new_op

BUCKET = "pipeline-bucket"


def put(s3: S3Env, key: str, body: bytes) -> str:
    """Put one object; its ETag without quotes."""
    answer = s3.client().put_object(Bucket=BUCKET, Key=key, Body=body)
    return str(answer["ETag"]).strip('"')


def put_multipart(s3: S3Env, key: str, body: bytes) -> str:
    """One object uploaded as a (one-part) multipart upload: its ETag is not an MD5 of it."""
    client = s3.client()
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)
    part = client.upload_part(
        Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=body
    )
    answer = client.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    return str(answer["ETag"]).strip('"')


def run_stages(
    store: DataStore, root: str, prev_dir: str | None = None, shard_rows: int = 1000
) -> str:
    """scan, classify, prefix and full hash of `root`, as the flow orders them; the op dir."""
    op_dir = new_op(store)
    backend = backend_for(root)
    scanned = scan.scan_root(store, op_dir, backend, shard_rows)
    for index in range(scanned["shards"]):
        classify.classify_shard(store, op_dir, index, backend, 1, prev_dir)
    for index in range(hashes.plan_prefix_inputs(store, op_dir, prev_dir, shard_rows, backend)):
        hashes.hash_shard(store, op_dir, hashes.PREFIX, index, backend, 1)
    full = hashes.plan_full_inputs(store, op_dir, prev_dir, shard_rows, 1 << 40, backend)
    for index in range(full):
        hashes.hash_shard(store, op_dir, hashes.FULL, index, backend, 1)
    return op_dir


class GetLog:
    """Every get_object request made while installed: its key and its arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @property
    def keys(self) -> Counter[str]:
        return Counter(c["Key"] for c in self.calls)


BODY = bytes(range(256)) * 40  # 10,240 bytes: more than one prefix


def make_duplicates(s3: S3Env) -> dict[str, str]:
    """Equal content uploaded two ways, look-alikes that differ, small equal objects."""
    return {
        "single": put(s3, "h/single.bin", BODY),
        "multi": put_multipart(s3, "h/sub dir/multi.bin", BODY),
        "late": put(s3, "h/late-diff.bin", BODY[:-1] + b"\x00"),  # same size and prefix
        "early": put(s3, "h/early-diff.bin", b"\xff" + BODY[1:]),  # same size only
        "small1": put(s3, "h/small-1.txt", b"tiny"),
        "small2": put(s3, "h/été/small-2.txt", b"tiny"),
        "alone": put(s3, "h/alone.txt", b"no other object has this size"),
        "empty": put(s3, "h/empty", b""),
    }
