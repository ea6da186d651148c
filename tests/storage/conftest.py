"""The storage contract runs on every backend: local disk and fsspec's memory filesystem."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.locations import DataStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStore]:
    if request.param == "local":
        yield DataStore(str(tmp_path / "data"))
        return
    memory = DataStore(f"memory://fileorg-test-{uuid.uuid4().hex}")
    yield memory
    if memory.fs.exists(memory.base):
        memory.fs.rm(memory.base, recursive=True)
