"""Shared fixtures: an isolated data folder per test, one Prefect test server per session."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """FILEORG_DATA_URL pointing at a fresh folder, for this process and its children."""
    from storage.settings import get_settings

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("FILEORG_DATA_URL", str(data))
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server (Prefect's own test harness), once per session.

    Its URL is exported in PREFECT_API_URL so that `fileorg` subprocesses use it too instead
    of each starting a temporary server of their own.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    # A deadline, not a wait: the server is polled and used as soon as it answers (about 5 s on
    # a quiet machine). With six suites sharing two cores it measured 84 s to come up (imports
    # alone 42 s), so 60 s failed whole runs at set-up.
    with prefect_test_harness(server_startup_timeout=240):
        url = PREFECT_API_URL.value()
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


@dataclass
class S3Env:
    """A moto S3 server (reset for this test) and the `s3` storage profile pointing at it."""

    endpoint: str
    key: str
    secret: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )

    def bucket(self, name: str = "test-bucket") -> str:
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 server in a thread, once per session (the way s3fs tests itself)."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Env]:
    """An empty S3 server and FILEORG_PROFILES naming it as profile `s3` (and `r2`, the same
    server through a second profile), for this process and its children."""
    import urllib.request

    from storage.settings import get_settings

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"))
    env = S3Env(moto_server, "AKIAFILEORGTEST", "fileorg-test-secret-do-not-log")
    profile = {
        "endpoint_url": moto_server,
        "key": env.key,
        "secret": env.secret,
        "region": "us-east-1",
        "max_attempts": 2,
    }
    monkeypatch.setenv(
        "FILEORG_PROFILES",
        json.dumps({"s3": profile, "r2": {**profile, "fixed_upload_size": True}}),
    )
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()
