"""The organize stages on object-store roots, against moto's S3 server, without Prefect:
scan (pagination, row fields, folder markers, versions), classify (ranged head reads, EXIF),
hash (duplicates by content, the hash cache, objects that change), plan (rel keys)."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from storage import manifests, objects, queries
from storage.errors import InvalidPlanOptions
from storage.locations import DataStore
from storage.objects import ObjectStore
from storage.operations import PlanOptions, check_options_for_root
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.classify.content import EXIF_BYTES, MAGIC_BYTES
from tasks.hashes import objects as object_hash
from tasks.hashes import stage as hashes
from tasks.plan import stage as plan
from tasks.scan import stage as scan
from tasks.scan.objects import data_prefix_in_root, object_ino
from tests.conftest import S3Env
from tests.tasks.pipeline import exif_jpeg

BUCKET = "pipeline-bucket"
SHOT = datetime(2019, 4, 12, 15, 30, 0)
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


@pytest.fixture
def store(tmp_path: Path) -> DataStore:
    return DataStore(str(tmp_path / "data"))


@pytest.fixture
def bucket(s3: S3Env) -> str:
    return s3.bucket(BUCKET)


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


def new_op(store: DataStore) -> str:
    return store.operation_dir(str(uuid.uuid4()))


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


def stage_rows(store: DataStore, op_dir: str, stage: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in manifests.shard_paths(store, op_dir, stage):
        rows += manifests.read_table(store, path).to_pylist()
    return rows


def groups(store: DataStore, op_dir: str) -> set[frozenset[bytes]]:
    rows, _ = queries.duplicate_groups(store, op_dir, limit=None)
    return {frozenset(r["paths"]) for r in rows}


class GetLog:
    """Every get_object request made while installed: its key and its arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @property
    def keys(self) -> Counter[str]:
        return Counter(c["Key"] for c in self.calls)


@pytest.fixture
def gets(monkeypatch: pytest.MonkeyPatch) -> Iterator[GetLog]:
    log = GetLog()
    real = ObjectStore._call

    async def logged(self: ObjectStore, method: str, **kwargs: Any) -> Any:
        if method == "get_object":
            log.calls.append(kwargs)
        return await real(self, method, **kwargs)

    monkeypatch.setattr(ObjectStore, "_call", logged)
    yield log


# --- scan ------------------------------------------------------------------------------------


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


# --- classify --------------------------------------------------------------------------------


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


# --- hash ------------------------------------------------------------------------------------

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


def test_duplicates_are_found_by_content_not_etag(
    s3: S3Env, bucket: str, store: DataStore, gets: GetLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two passes as for big objects: nothing is small enough to be read whole."""
    monkeypatch.setattr(object_hash, "WHOLE_OBJECT_BYTES", 0)
    etags = make_duplicates(s3)
    assert etags["single"] != etags["multi"]  # a multipart ETag is not an MD5 of the content

    op_dir = run_stages(store, f"s3://{BUCKET}/h")

    assert groups(store, op_dir) == {
        frozenset({b"single.bin", b"sub dir/multi.bin"}),
        frozenset({b"small-1.txt", "été/small-2.txt".encode()}),
    }
    # Prefix pass: one ranged GET per object sharing a size; full pass: one GET per object
    # still sharing size and prefix, except those the prefix already covered whole.
    prefix = [c for c in gets.calls if c.get("Range") == "bytes=0-4095"]
    full = [c for c in gets.calls if "Range" not in c]
    assert Counter(c["Key"] for c in prefix) == Counter(
        f"h/{k}"
        for k in (
            "single.bin",
            "sub dir/multi.bin",
            "late-diff.bin",
            "early-diff.bin",
            "small-1.txt",
            "été/small-2.txt",
        )
    )
    assert Counter(c["Key"] for c in full) == Counter(
        {"h/single.bin": 1, "h/sub dir/multi.bin": 1, "h/late-diff.bin": 1}
    )
    hashed = stage_rows(store, op_dir, hashes.FULL)
    assert all(r["error"] is None for r in hashed)
    assert sorted(r["cached"] for r in hashed) == [False] * 3 + [True] * 2  # small: the prefix


def test_small_candidates_cost_one_request_each(
    s3: S3Env, bucket: str, store: DataStore, gets: GetLog
) -> None:
    make_duplicates(s3)

    op_dir = run_stages(store, f"s3://{BUCKET}/h")

    assert groups(store, op_dir) == {
        frozenset({b"single.bin", b"sub dir/multi.bin"}),
        frozenset({b"small-1.txt", "été/small-2.txt".encode()}),
    }
    candidates = ["single.bin", "sub dir/multi.bin", "late-diff.bin", "early-diff.bin"]
    candidates += ["small-1.txt", "été/small-2.txt"]
    assert sorted(gets.keys) == sorted(f"h/{k}" for k in candidates)  # once each, whole
    assert all("Range" not in c for c in gets.calls)
    hashed = stage_rows(store, op_dir, hashes.FULL)
    # The full pass reads nothing: the two pairs' digests are already whole-content hashes.
    assert len(hashed) == 4 and all(r["cached"] and r["error"] is None for r in hashed)


def test_rescan_of_an_unchanged_bucket_reads_nothing_and_a_change_is_read_again(
    s3: S3Env, bucket: str, store: DataStore, gets: GetLog
) -> None:
    make_duplicates(s3)
    root = f"s3://{BUCKET}/h"
    first = run_stages(store, root)
    gets.calls.clear()

    second = run_stages(store, root, prev_dir=first)

    assert gets.calls == []
    assert groups(store, second) == groups(store, first)
    for stage in (hashes.PREFIX, hashes.FULL):
        digests = {(r["ino"], r["digest"]) for r in stage_rows(store, second, stage)}
        assert digests == {(r["ino"], r["digest"]) for r in stage_rows(store, first, stage)}
        assert all(r["cached"] for r in stage_rows(store, second, stage))

    put(s3, "h/late-diff.bin", BODY)  # now a third copy: a new ETag, read again
    third = run_stages(store, root, prev_dir=second)

    assert set(gets.keys) == {"h/late-diff.bin"}
    assert frozenset({b"single.bin", b"sub dir/multi.bin", b"late-diff.bin"}) in groups(
        store, third
    )


def test_same_content_uploaded_again_keeps_its_digests_and_refreshes_its_date(
    s3: S3Env, bucket: str, store: DataStore, gets: GetLog
) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    make_duplicates(s3)
    root = f"s3://{BUCKET}/h"
    first = run_stages(store, root)
    # The same bytes put again: same ETag, a new LastModified (set in moto's backend, whose
    # clock has one-second steps in listings).
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in ("h/single.bin", "h/alone.txt"):
        backend.get_object(BUCKET, key).last_modified = datetime(2024, 6, 7, 8, 9, 10)
    gets.calls.clear()

    second = run_stages(store, root, prev_dir=first)

    assert gets.calls == []  # digests reused by path, size and ETag
    assert groups(store, second) == groups(store, first)
    dates = {r["path"]: r for r in stage_rows(store, second, "classify")}
    alone = dates[b"alone.txt"]
    assert (alone["date"], alone["date_source"]) == (datetime(2024, 6, 7, 8, 9, 10), "mtime")


@pytest.mark.parametrize(
    ("whole_bytes", "changed_before"),
    [(0, hashes.FULL), (object_hash.WHOLE_OBJECT_BYTES, hashes.PREFIX)],
    ids=["big objects: between the passes", "small objects: before the whole read"],
)
def test_an_object_that_changes_during_hashing_gets_an_error_not_a_digest(
    s3: S3Env,
    bucket: str,
    store: DataStore,
    monkeypatch: pytest.MonkeyPatch,
    whole_bytes: int,
    changed_before: str,
) -> None:
    monkeypatch.setattr(object_hash, "WHOLE_OBJECT_BYTES", whole_bytes)
    make_duplicates(s3)
    root = f"s3://{BUCKET}/h"
    op_dir = new_op(store)
    backend = backend_for(root)
    scan.scan_root(store, op_dir, backend, 100)
    classify.classify_shard(store, op_dir, 0, backend, 1)
    errors = 0
    for pass_name in (hashes.PREFIX, hashes.FULL):
        if pass_name == changed_before:
            put(s3, "h/sub dir/multi.bin", b"\xee" * len(BODY))  # same size, other content
        if pass_name == hashes.PREFIX:
            shards = hashes.plan_prefix_inputs(store, op_dir, None, 100, backend)
        else:
            shards = hashes.plan_full_inputs(store, op_dir, None, 100, 1 << 40, backend)
        for index in range(shards):
            errors += hashes.hash_shard(store, op_dir, pass_name, index, backend, 1)["errors"]

    assert errors == 1
    problems = [p for p in queries.problems(store, op_dir) if p["stage"] != "scan"]
    assert problems == [
        {"path": b"sub dir/multi.bin", "stage": changed_before, "error": "changed since scan"}
    ]
    assert frozenset({b"single.bin", b"sub dir/multi.bin"}) not in groups(store, op_dir)


# --- plan ------------------------------------------------------------------------------------


def test_plan_of_a_bucket_moves_rel_keys_and_leaves_markers_alone(
    s3: S3Env, bucket: str, store: DataStore
) -> None:
    make_duplicates(s3)
    put(s3, "h/dir one/été 2019.jpg", exif_jpeg("2019:04:12 15:30:00"))
    put(s3, "h/folder/", b"")
    root = f"s3://{BUCKET}/h"
    op_dir = run_stages(store, root)

    counts = plan.plan_operation(
        store, op_dir, PlanOptions(duplicates="quarantine"), 100, backend_for(root)
    )

    rows = {r["src"]: r for r in stage_rows(store, op_dir, "plan")}
    photo = rows["dir one/été 2019.jpg".encode()]
    assert (photo["action"], photo["dst"]) == ("move", "Images/2019/été 2019.jpg".encode())
    marker = rows[b"folder/"]  # scanned as kind "other", planned as a skip with its reason
    assert (marker["action"], marker["dst"], marker["reason_code"]) == ("skip", None, "special")
    quarantined = [r for r in rows.values() if r["action"] == "quarantine"]
    assert len(quarantined) == 2 == counts["quarantine"]
    for row in rows.values():
        dst = row["dst"]
        assert dst is None or not (dst.startswith(b"/") or b"//" in dst or dst.endswith(b"/"))


def test_hardlink_policy_is_refused_on_object_roots(s3: S3Env) -> None:
    with pytest.raises(InvalidPlanOptions) as info:
        check_options_for_root(PlanOptions(duplicates="hardlink"), f"s3://{BUCKET}/x")
    assert "\n" not in str(info.value)
    check_options_for_root(PlanOptions(duplicates="hardlink"), "/srv/photos")
    check_options_for_root(PlanOptions(duplicates="quarantine"), f"s3://{BUCKET}/x")


def test_a_bucket_gets_the_same_left_alone_rules_by_key_names(
    s3: S3Env, bucket: str, store: DataStore
) -> None:
    for key, body in {
        "home/.bashrc": b"alias ll='ls -l'\n",
        "home/.ssh/id_rsa": b"-----BEGIN KEY-----\n",
        "home/node_modules/left-pad/index.js": b"module.exports = 1;\n",
        "home/Code/app/package.json": b'{"name": "app"}\n',
        "home/Code/app/src/a.js": b"let a = 1;\n",
        "home/Code/app/logo.png": b"\x89PNG\r\n\x1a\n logo",
        "home/Photos/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "home/Photos/._IMG.jpg": b"\x00\x05\x16\x07",
        "home/Photos/Thumbs.db": b"thumbs",
        "home/Photos/IMG.jpg": exif_jpeg("2015:05:07 10:11:12"),
    }.items():
        put(s3, key, body)
    root = f"s3://{BUCKET}/home"
    op_dir = run_stages(store, root)

    plan.plan_operation(store, op_dir, PlanOptions(), 100, backend_for(root))

    rows = {r["src"]: r for r in stage_rows(store, op_dir, "plan")}
    assert {p: (r["action"], r["reason_code"], r["unit"]) for p, r in rows.items()} == {
        b".bashrc": ("skip", "hidden", None),
        b".ssh/id_rsa": ("skip", "credentials", b".ssh"),
        b"node_modules/left-pad/index.js": ("skip", "tool-folder", b"node_modules"),
        b"Code/app/package.json": ("skip", "project", b"Code/app"),
        b"Code/app/src/a.js": ("skip", "project", b"Code/app"),
        b"Code/app/logo.png": ("skip", "project", b"Code/app"),
        b"Photos/.DS_Store": ("skip", "junk", None),
        b"Photos/._IMG.jpg": ("skip", "junk", None),
        b"Photos/Thumbs.db": ("skip", "junk", None),
        b"Photos/IMG.jpg": ("move", "organized", None),
    }
    assert rows[b"Photos/IMG.jpg"]["reason"] == "images by .jpg, EXIF 2015-05-07"
    # What the names leave alone is never read: not classified, not hashed.
    classified = {r["path"] for r in stage_rows(store, op_dir, "classify")}
    assert b"node_modules/left-pad/index.js" not in classified and b".bashrc" not in classified
    units, _ = queries.left_alone(store, op_dir)
    project = next(u for u in units if u["path"] == b"Code/app")
    assert (project["files"], project["reason"]) == (3, "left alone: project (package.json)")


def test_moving_projects_whole_is_refused_on_object_roots(s3: S3Env) -> None:
    with pytest.raises(InvalidPlanOptions) as info:
        check_options_for_root(PlanOptions(projects="move"), f"s3://{BUCKET}/x")
    assert "\n" not in str(info.value) and "projects 'move'" in str(info.value)
    check_options_for_root(PlanOptions(projects="move"), "/srv/home")
