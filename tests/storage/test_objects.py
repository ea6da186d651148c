"""ObjectStore against moto's S3 server: the conditional requests every stage relies on."""

from __future__ import annotations

import os

import pytest

from storage.errors import RootError
from storage.objects import (
    ObjectChanged,
    ObjectExists,
    ObjectRoot,
    ObjectStore,
    is_object_url,
    parse_object_url,
)
from tests.conftest import S3Env


@pytest.fixture
def store(s3: S3Env) -> ObjectStore:
    s3.bucket("photos-bucket")
    return ObjectStore(parse_object_url("s3://photos-bucket/inbox"))


def test_urls_parse_to_canonical_roots(s3: S3Env) -> None:
    assert parse_object_url("s3://bkt/a/b/") == ObjectRoot("s3", "bkt", "a/b")
    assert parse_object_url("r2://bkt").url == "r2://bkt"
    assert is_object_url("s3://bkt/x") and not is_object_url("/tmp/x")
    assert not is_object_url("memory://x")


@pytest.mark.parametrize(
    "bad",
    ["s3://B/x", "s3://bkt/../x", "s3://bkt//x", "s3://bkt/a/./b", "nope://bkt/x", "s3://b\x00k/x"],
)
def test_bad_urls_are_refused_with_one_line(s3: S3Env, bad: str) -> None:
    with pytest.raises(RootError) as info:
        parse_object_url(bad)
    assert "\n" not in str(info.value)


def test_roots_contain_by_whole_components(s3: S3Env) -> None:
    alice = parse_object_url("s3://bkt/data/alice")
    assert alice.contains(parse_object_url("s3://bkt/data/alice/x"))
    assert not alice.contains(parse_object_url("s3://bkt/data/alice2"))
    assert not alice.contains(parse_object_url("r2://bkt/data/alice"))
    assert parse_object_url("s3://bkt").contains(alice)


def test_listing_pages_are_a_thousand_keys_a_request(store: ObjectStore) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]  # 2,100 PUTs over HTTP take 20 s
    for i in range(2100):
        backend.put_object("photos-bucket", f"inbox/d{i % 3}/f{i}", b"x")
    store.put_if_absent("inboxed/outside", b"x")  # same string prefix, not under the root
    before = store.requests
    keys = [info.key for page in store.list_pages() for info in page]
    assert store.requests - before == 3
    assert len(keys) == 2100 and keys == sorted(keys)
    assert all(k.startswith("inbox/") for k in keys)


def test_put_never_overwrites(store: ObjectStore) -> None:
    store.put_if_absent("inbox/a", b"first")
    with pytest.raises(ObjectExists):
        store.put_if_absent("inbox/a", b"second")
    assert store.fs.cat_file("photos-bucket/inbox/a") == b"first"


def test_copy_verifies_and_never_overwrites(store: ObjectStore) -> None:
    store.put_if_absent("inbox/src", b"content")
    store.put_if_absent("inbox/taken", b"theirs")
    src = store.head("inbox/src")
    assert src is not None
    copy = store.copy_if_absent(src, "inbox/dst")
    assert copy.size == 7 and store.fs.cat_file("photos-bucket/inbox/dst") == b"content"
    with pytest.raises(ObjectExists):
        store.copy_if_absent(src, "inbox/taken")
    assert store.fs.cat_file("photos-bucket/inbox/taken") == b"theirs"


def test_copy_of_a_changed_source_is_refused(store: ObjectStore) -> None:
    store.put_if_absent("inbox/src", b"v1")
    src = store.head("inbox/src")
    assert src is not None
    store.fs.pipe_file("photos-bucket/inbox/src", b"v2")
    with pytest.raises(ObjectChanged):
        store.copy_if_absent(src, "inbox/dst")
    assert store.head("inbox/dst") is None


def test_multipart_copy_of_a_large_object(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.objects import copy

    monkeypatch.setattr(copy, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part
    data = os.urandom(11 * 1024 * 1024)
    store.put_if_absent("inbox/big", data)
    src = store.head("inbox/big")
    assert src is not None
    copy = store.copy_if_absent(src, "inbox/big-copy")
    assert copy.etag.endswith("-3")
    assert store.fs.cat_file("photos-bucket/inbox/big-copy") == data
    with pytest.raises(ObjectExists):
        store.copy_if_absent(src, "inbox/big-copy")


def test_delete_only_the_expected_version(store: ObjectStore) -> None:
    etag = store.put_if_absent("inbox/a", b"one")
    with pytest.raises(ObjectChanged):
        store.delete_if_match("inbox/a", "0" * 32)
    assert store.head("inbox/a") is not None
    store.delete_if_match("inbox/a", etag)
    assert store.head("inbox/a") is None
    with pytest.raises(ObjectChanged):
        store.delete_if_match("inbox/a", etag)


def test_reads_are_conditional_on_the_scanned_etag(store: ObjectStore) -> None:
    etag = store.put_if_absent("inbox/a", b"0123456789")
    heads = store.read_heads([("inbox/a", etag, 4), ("inbox/a", "f" * 32, 4), ("inbox/b", None, 4)])
    assert heads[0] == b"0123"
    assert isinstance(heads[1], ObjectChanged)
    assert isinstance(heads[2], FileNotFoundError)
    hashed = store.hash_objects([("inbox/a", etag, 10)])
    import blake3

    assert hashed == [(blake3.blake3(b"0123456789").digest(), 10)]


def test_missing_bucket_is_one_clear_line(s3: S3Env) -> None:
    with pytest.raises(RootError, match="bucket does not exist"):
        ObjectStore(parse_object_url("s3://no-such-bucket/x")).check()


def test_wrong_credentials_are_named_not_shown(s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from storage.settings import get_settings

    bad = {"endpoint_url": s3.endpoint, "key": "AKIAWRONG", "secret": "wrong-secret-value"}
    monkeypatch.setenv("FILEORG_PROFILES", json.dumps({"s3": bad}))
    get_settings.cache_clear()
    s3.bucket("some-bucket")
    # moto accepts any key unless IAM is enforced; the error path is what is under test
    try:
        ObjectStore(parse_object_url("s3://some-bucket")).check()
    except RootError as exc:
        assert "wrong-secret-value" not in str(exc)


def test_a_copy_keeps_metadata_content_headers_and_storage_class(
    s3: S3Env, store: ObjectStore
) -> None:
    s3.client().put_object(
        Bucket="photos-bucket",
        Key="inbox/src.txt",
        Body=b"hello",
        ContentType="text/plain",
        ContentDisposition="inline",
        CacheControl="max-age=60",
        StorageClass="STANDARD_IA",
        Metadata={"camera": "x100"},
    )
    src = store.head("inbox/src.txt")
    assert src is not None

    store.copy_if_absent(src, "inbox/dst.txt")

    copy = s3.client().head_object(Bucket="photos-bucket", Key="inbox/dst.txt")
    assert (copy["ContentType"], copy["ContentDisposition"], copy["CacheControl"]) == (
        "text/plain",
        "inline",
        "max-age=60",
    )
    assert (copy["StorageClass"], copy["Metadata"]) == ("STANDARD_IA", {"camera": "x100"})


REDACTING = """
import logging, sys
import storage.objects
from storage.objects.errors import REDACT, REDACTED_LOGGERS
installed = lambda: [REDACT in logging.getLogger(n).filters for n in REDACTED_LOGGERS]
print(installed())
if sys.argv[1:] == ["connect"]:
    storage.objects.filesystem("s3")
    print(installed())
"""


def test_importing_installs_no_log_filter_and_a_filesystem_does(s3: S3Env) -> None:
    """An import has no side effects on logging; every client is made by filesystem(), so
    that is where the credential filter goes, before any request can be logged."""
    import subprocess
    import sys

    def run(*args: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", REDACTING, *args], capture_output=True, text=True, check=True
        )
        return done.stdout.splitlines()

    assert run() == ["[False, False]"]
    assert run("connect") == ["[False, False]", "[True, True]"]
