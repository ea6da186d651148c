"""Hashing a bucket, against moto's S3 server: duplicates by content not ETag, the requests
each pass makes, the hash cache by ETag, objects that change (what holds on both backends:
test_contract.py)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from storage import queries
from storage.locations import DataStore
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.hashes import objects as object_hash
from tasks.hashes import stage as hashes
from tasks.scan import stage as scan
from tests.conftest import S3Env
from tests.tasks.buckets import (
    BODY,
    BUCKET,
    GetLog,
    make_duplicates,
    put,
    run_stages,
)
from tests.tasks.pipeline import duplicate_groups as groups
from tests.tasks.pipeline import new_op, stage_rows

SHOT = datetime(2019, 4, 12, 15, 30, 0)
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


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
