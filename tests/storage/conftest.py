"""The storage contract runs on every backend: local disk, fsspec's memory filesystem and S3
(moto's server, through the operator's `s3` storage profile)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.locations import DataStore
from tests.conftest import S3Env

CONTRACT_BUCKET = "contract-bucket"


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStore]:
    if request.param == "local":
        yield DataStore(str(tmp_path / "data"))
        return
    if request.param == "s3":
        # Requested only here so that local and memory runs do not start the moto server.
        s3: S3Env = request.getfixturevalue("s3")
        s3.bucket(CONTRACT_BUCKET)
        yield DataStore(f"s3://{CONTRACT_BUCKET}/data")
        return
    memory = DataStore(f"memory://fileorg-test-{uuid.uuid4().hex}")
    yield memory
    if memory.fs.exists(memory.base):
        memory.fs.rm(memory.base, recursive=True)
