"""Shared fixtures: an isolated data folder per test, one Prefect test server per session."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import processes

# Every process this one starts inherits the mark (per process: each xdist worker has its own),
# the background servers and warm runners too (they drop FILEORG_* but not this): what is
# still alive with it when the session ends was left behind by one of its tests.
SESSION_MARK = "PYTEST_FILEORG_SESSION"
os.environ[SESSION_MARK] = uuid.uuid4().hex
LEFTOVER_SECONDS = 15.0  # a deadline for what is stopping as the last test ends

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# One migrated Prefect database for every server the suite starts in a new home
# (flows/cli/prefect_db.py: about 9 s of each start otherwise), shared by the xdist workers and
# kept between runs, as a user's cache is: it is named by Prefect's version.
os.environ.setdefault(
    "FILEORG_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"fileorg-test-cache-{os.getuid()}")
)


# The test files that take longest (each a minute or more of a worker), longest first: the first
# nine by their worker time in the junit report of a clean-clone CI run (2026-12-02: serve 500 s,
# background 320, crash 315, cli_apply 272, readme 204, cli_home 202, cli_input 197, apply_flow
# 171, warm 167), the others as measured with --durations on 2026-12-01. --dist loadfile runs
# a file whole on one worker, and xdist's own order (most tests first, --no-loadscope-reorder
# turns it off) left the files with few long tests (crash loops, serve, the README's jobs) for
# the end of the run, where one worker ran them while the other had finished. Started first,
# they overlap the many short ones.
LONGEST_FIRST = (
    "tests/flows/test_serve.py",
    "tests/flows/test_background.py",
    "tests/tasks/apply/test_crash.py",
    "tests/flows/test_cli_apply.py",
    "tests/test_readme.py",
    "tests/flows/test_cli_home.py",
    "tests/flows/test_cli_input.py",
    "tests/flows/test_apply_flow.py",
    "tests/flows/test_warm.py",
    "tests/api/test_interrupted_flow.py",
    "tests/api/test_integration.py",
    "tests/flows/test_cli_locks.py",
    "tests/flows/test_organize.py",
    "tests/api/test_ws.py",
    "tests/flows/test_prefect_yaml.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, then the others by their number of tests (xdist's order)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.nodeid.split("::")[0]] = counts.get(item.nodeid.split("::")[0], 0) + 1
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}

    def order(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        return rank.get(path, len(rank)), -counts[path]

    items.sort(key=order)  # stable: each file's tests keep their order


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """The last teardown (set up first, torn down last): no background Prefect server, warm
    runner, process pool or resource tracker that this session's tests started is still
    alive (seen: a server of test_background with no idle stop, alive after a CI run). Any
    found is killed, and the last test errors with the list."""
    yield
    import sys

    pool = sys.modules.get("tasks.pool")  # in-process flow runs: this process's own pool
    if pool is not None:
        pool.end()
    mark = os.environ[SESSION_MARK]

    deadline = time.monotonic() + LEFTOVER_SECONDS
    found = processes.leftovers(SESSION_MARK, mark)
    while found and time.monotonic() < deadline:  # what is stopping as the last test ends
        time.sleep(0.2)
        found = processes.leftovers(SESSION_MARK, mark)
    processes.kill(found)
    assert not found, "left behind by this session's tests (now killed):\n" + "\n".join(
        f"pid {pid}: {what}" for pid, what in sorted(found.items())
    )


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
def prefect_server(prefect_template: Path) -> Iterator[str]:
    """A real Prefect server (Prefect's own test harness), once per session, on a copy of the
    migrated template (tests/prefect_harness.py).

    Its URL is exported in PREFECT_API_URL so that `fileorg` subprocesses use it too instead
    of each starting a temporary server of their own.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL

    from tests.prefect_harness import seeded_test_harness

    # A deadline, not a wait: the server is polled and used as soon as it answers (about 5 s on
    # a quiet machine). With six suites sharing two cores it measured 84 s to come up (imports
    # alone 42 s), so 60 s failed whole runs at set-up.
    with seeded_test_harness(prefect_template, server_startup_timeout=240) as database:
        # the harness's database is the seeded copy: a Prefect that renamed it fails here
        assert PREFECT_SERVER_DATABASE_CONNECTION_URL.value().endswith(str(database))
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


@pytest.fixture(scope="session")
def prefect_template() -> Path:
    """The cached migrated Prefect database, built if missing (for `fileorg serve`, which
    only copies one that exists)."""
    from flows.cli import prefect_db

    return prefect_db.build(prefect_db.template_path(os.environ))


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
