"""Fixtures of the stage tests: `root`, one root to organize on each backend, so that a
contract test is written once and runs on a temporary folder and on a moto bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.locations import DataStore
from storage.objects import ObjectStore
from tests.conftest import S3Env
from tests.roots import BucketRoot, LocalRoot, TreeRoot
from tests.tasks.buckets import BUCKET, GetLog

ROOT_BUCKET = "root-bucket"


@pytest.fixture(params=["local", "bucket"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> TreeRoot:
    """An empty root: a temp folder, or the prefix `root/` of a fresh bucket on moto's server
    (the `s3` storage profile names it). Its helpers are in tests/roots.py."""
    if request.param == "local":
        return LocalRoot(tmp_path / "root")
    # Requested only here, so that local runs do not start the moto server.
    s3 = request.getfixturevalue("s3")
    return BucketRoot(s3.client(), s3.bucket(ROOT_BUCKET))


@pytest.fixture
def store(tmp_path: Path) -> DataStore:
    """A local data folder for the operations' manifests (a module may define its own)."""
    return DataStore(str(tmp_path / "data"))


@pytest.fixture
def bucket(s3: S3Env) -> str:
    """The bucket of the bucket-only stage tests (tests/tasks/buckets.py puts into it)."""
    return s3.bucket(BUCKET)


@pytest.fixture
def gets(monkeypatch: pytest.MonkeyPatch) -> Iterator[GetLog]:
    log = GetLog()
    real = ObjectStore.request

    async def logged(self: ObjectStore, method: str, **kwargs: Any) -> Any:
        if method == "get_object":
            log.calls.append(kwargs)
        return await real(self, method, **kwargs)

    monkeypatch.setattr(ObjectStore, "request", logged)
    yield log
