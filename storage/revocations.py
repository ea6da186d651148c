"""Revoked grants, as the flows see them: one small file per revoke in the data folder.

The API checks grants in its database when a request arrives; a run that starts later (a
schedule's next run, a run queued before the revoke, one restarted from the Prefect UI) has no
request to check. So a revoke also leaves `revocations/{owner}/{id}.json` ({root, at}) in the
data folder, written before the grant is deleted, and a run that names its owner and when it
was authorized refuses a root inside a root revoked since (issue 12 point 3).

One file per revoke, never rewritten: two revokes at once (two API processes) cannot lose one
another. A revoke applies to what was authorized before it; a root granted again later is
authorized anew (a new operation or schedule), so old files never need removing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from storage.errors import RootError
from storage.locations import DataStore
from storage.roots import within


def _owner_dir(store: DataStore, owner: str) -> str:
    return f"{store.base}/revocations/{uuid.UUID(owner)}"


def record(store: DataStore, owner: str, root: str, at: datetime | None = None) -> None:
    when = (at or datetime.now(UTC)).isoformat()
    payload = json.dumps({"root": root, "at": when}, ensure_ascii=True).encode()
    store.write_bytes(f"{_owner_dir(store, owner)}/{uuid.uuid4()}.json", payload)


def revoked_since(store: DataStore, owner: str, root: str, since: datetime) -> str | None:
    """The revoked root that holds `root`, revoked at or after `since`, or None."""
    for path in store.glob(f"{_owner_dir(store, owner)}/*.json"):
        try:
            found = json.loads(store.read_bytes(path))
            revoked, at = str(found["root"]), datetime.fromisoformat(found["at"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            continue  # a half-written file is not a revoke that happened
        if at >= since and within(root, revoked):
            return revoked
    return None


def check_not_revoked(store: DataStore, owner: str, root: str, authorized_at: str) -> None:
    """RootError when the grant that authorized `root` for `owner` was revoked since."""
    since = datetime.fromisoformat(authorized_at)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    revoked = revoked_since(store, owner, root, since)
    if revoked is not None:
        raise RootError(
            f"root {root}: the grant of {revoked} was revoked after this run was authorized; "
            "nothing was touched"
        )
