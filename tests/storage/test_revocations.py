"""Revoked grants in the data folder: what was authorized before a revoke is refused after it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import revocations
from storage.errors import RootError
from storage.locations import DataStore


def test_a_revoke_refuses_roots_inside_it_authorized_before_it(tmp_path: Path) -> None:
    store, owner, other = DataStore(str(tmp_path)), str(uuid.uuid4()), str(uuid.uuid4())
    before = datetime.now(UTC) - timedelta(seconds=1)
    revocations.record(store, owner, "/srv/alice")
    after = datetime.now(UTC) + timedelta(seconds=1)

    assert revocations.revoked_since(store, owner, "/srv/alice/photos", before) == "/srv/alice"
    assert revocations.revoked_since(store, owner, "/srv/alice2", before) is None
    assert revocations.revoked_since(store, other, "/srv/alice", before) is None
    assert revocations.revoked_since(store, owner, "/srv/alice", after) is None  # granted anew
    with pytest.raises(RootError, match="revoked"):
        revocations.check_not_revoked(store, owner, "/srv/alice", before.isoformat())
    revocations.check_not_revoked(store, owner, "/srv/alice", after.isoformat())
