"""Errors from the store reach the user as one line; throttling is retried with backoff.

moto answers for a healthy store; tests.s3proxy stands in front of it for a store that denies
access or throttles, reached through a storage profile whose endpoint is the proxy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.organize import organize_flow
from storage.errors import RootError
from storage.objects import ObjectStore, parse_object_url
from tests.conftest import S3Env
from tests.s3proxy import S3Proxy, add_profile

FILEORG = Path(sys.executable).parent / "fileorg"
OBJECTS = {
    "photos/a/cat.jpg": b"\xff\xd8\xff\xe0same",
    "photos/b/cat copy.jpg": b"\xff\xd8\xff\xe0same",
    "photos/notes/2019-04-12 été.txt": b"hello",
    "photos/empty": b"",
}


@pytest.fixture
def media(s3: S3Env) -> S3Env:
    s3.bucket("media")
    client = s3.client()
    for key, body in OBJECTS.items():
        client.put_object(Bucket="media", Key=key, Body=body)
    return s3


@pytest.fixture
def proxy(media: S3Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Proxy]:
    """Profile `flaky`: the moto server behind the proxy, one botocore retry per request."""
    with S3Proxy(media.endpoint).running() as running:
        add_profile(monkeypatch, "flaky", endpoint_url=running.url, max_attempts=2)
        yield running


def fileorg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FILEORG), *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("argv", "expected_stderr"),
    [
        (
            ["organize", "s3://no-such-bucket/photos", "--dry-run"],
            "error: root s3://no-such-bucket/photos: the bucket does not exist\n",
        ),
        (
            ["schedule", "add", "s3://no-such-bucket/photos", "--every", "3600"],
            "error: root s3://no-such-bucket/photos: the bucket does not exist\n",
        ),
        (
            ["organize", "minio://media/photos", "--dry-run"],
            "error: unknown storage profile 'minio': the operator has not configured it\n",
        ),
        (
            ["organize", "s3://media/photos/../x", "--dry-run"],
            "error: 's3://media/photos/../x': "
            "empty, '.' and '..' path components are not allowed\n",
        ),
        (
            ["organize", "s3://media/photos", "--dry-run", "--duplicates", "hardlink"],
            "error: duplicates policy 'hardlink' is not possible on an object-store root "
            "(objects cannot be hard-linked): use 'report' or 'quarantine'\n",
        ),
        (
            ["organize", "s3://AKIAX:secret-value@media/photos", "--dry-run"],
            "error: credentials and endpoints cannot be given in a URL: "
            "the operator's storage profile has them\n",
        ),
    ],
    ids=[
        "missing bucket",
        "missing bucket, schedule",
        "unknown profile",
        "dot-dot",
        "hardlink",
        "credentials",
    ],
)
def test_bad_object_roots_are_one_line_and_exit_2(
    media: S3Env, argv: list[str], expected_stderr: str
) -> None:
    done = fileorg(*argv)

    assert (done.returncode, done.stderr, done.stdout) == (2, expected_stderr, "")


def test_access_denied_is_one_line_and_exit_2(proxy: S3Proxy) -> None:
    proxy.deny = True
    expected = "root flaky://media/photos: access denied (check the storage profile's credentials)"

    with pytest.raises(RootError) as raised:
        ObjectStore(parse_object_url("flaky://media/photos")).check()
    done = fileorg("organize", "flaky://media/photos", "--dry-run")

    assert str(raised.value) == expected
    assert (done.returncode, done.stderr) == (2, f"error: {expected}\n")
    assert proxy.answered[403] >= 2


def test_a_profile_without_credentials_is_one_line_and_exit_2(
    media: S3Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A user whose profile has no key and whose machine has none either read botocore's
    "Unable to locate credentials", which says neither which profile nor where to put them."""
    import json

    from storage.settings import get_settings

    profiles = json.loads(os.environ["FILEORG_PROFILES"])
    profiles["bare"] = {"endpoint_url": media.endpoint, "region": "us-east-1"}
    monkeypatch.setenv("FILEORG_PROFILES", json.dumps(profiles))
    get_settings.cache_clear()
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask

    done = fileorg("organize", "bare://media/photos", "--dry-run")

    expected = (
        "error: root bare://media/photos: no credentials for its storage profile (give the"
        " profile a key and secret, or set them where AWS tools look: the environment, ~/.aws)\n"
    )
    assert (done.returncode, done.stderr, done.stdout) == (2, expected, "")


# Each SlowDown costs about 2 s here: botocore's adaptive mode then rate-limits the client
# (0.5 requests a second at first). So these tests throttle as few requests as prove the point.


def test_throttled_listing_is_retried_until_it_succeeds(proxy: S3Proxy) -> None:
    proxy.throttle = 1

    pages = list(ObjectStore(parse_object_url("flaky://media/photos")).list_pages())

    assert sorted(info.key for page in pages for info in page) == sorted(OBJECTS)
    assert (proxy.answered[503], proxy.answered[200]) == (1, 1)


def test_an_organize_dry_run_succeeds_through_throttling(proxy: S3Proxy, data_dir: Path) -> None:
    proxy.throttle = 1

    report = organize_flow(operation_id=str(uuid.uuid4()), root="flaky://media/photos")

    assert proxy.answered[503] == 1
    assert (report["files"], report["duplicates"]["groups"]) == (len(OBJECTS), 1)


def test_endless_throttling_is_one_line_and_exit_2(
    proxy: S3Proxy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (`fileorg` is flows.cli.main). storage.objects.filesystem gives s3fs two
    tries, each of which is botocore's request plus its one retry (max_attempts=1): four
    requests, then the user hears of it."""
    from flows import cli

    add_profile(monkeypatch, "flaky", endpoint_url=proxy.url, max_attempts=1)
    for name, value in (
        ("PREFECT_LOGGING_LOGGERS_PREFECT_SERVER_LEVEL", "WARNING"),
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ):  # main() sets these defaults in the environment: keep them to this test
        monkeypatch.setenv(name, os.environ.get(name, value))
    monkeypatch.setattr(sys, "argv", ["fileorg", "organize", "flaky://media/photos", "--dry-run"])
    # main() ends the stages' pool as its process exits (run_here's finally), for good: put
    # back for the tests after this one in this worker (a CI run's pool test failed so).
    from tasks import pool

    monkeypatch.setattr(pool, "_ended", pool._ended)
    proxy.throttle = -1

    with pytest.raises(SystemExit) as exited:
        cli.main()

    assert pool._ended  # what the teardown puts back
    expected = "root flaky://media/photos: the store is throttling requests (retries exhausted)"
    assert (exited.value.code, capsys.readouterr().err) == (2, f"error: {expected}\n")
    assert (proxy.answered[503], proxy.answered[200]) == (4, 0)  # retried before giving up
