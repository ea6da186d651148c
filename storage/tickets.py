"""Run tickets: what the API signs so that a deployment run proves the service asked for it.

Prefect's API has no login of its own: whoever reaches it can create a run of any deployment
with any parameters (issue 12 point 4). So every run the API starts or schedules carries a
`ticket` parameter, a JWT (PyJWT, HS256) signed with a key derived from the API's secret key,
naming what was authorized: the kind of run, the operation, the owner, the root and its
identity, the options and dry-run flag, when it was authorized, and an expiry. A flow run of a
deployment verifies it before it touches a file and refuses what it does not cover; the
refusal is recorded in the data folder (`refusals/`) and fails the run. Runs the CLI makes in
its own process (no deployment) need none: the user's own files, the user's own permissions.

A schedule's runs cannot carry a fresh ticket (their parameters are fixed when the schedule
is made): a schedule carries a ticket of kind `schedule` without an expiry, and each run is
authorized again from the data folder's revocations (storage.revocations) by its owner and
time. The flows find the key as the API does: FILEORG_SECRET_KEY / SECRET_KEY, or the
`api-secret-key` file the API keeps in a local data folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from storage.errors import UserError
from storage.locations import DataStore

ALGORITHM = "HS256"
LIFETIME = timedelta(hours=1)  # from the request to the run's start: a queue, not a session
SECRET_FILE = "api-secret-key"


class TicketError(UserError):
    """A deployment run without a valid ticket for what it was asked to do."""


def ticket_key(secret: str) -> bytes:
    """A key of its own for tickets, so that no ticket is ever an access token, or back."""
    return hashlib.sha256(b"fileorg run ticket\x00" + secret.encode()).digest()


def sign(secret: str, claims: dict[str, Any], expires: bool = True) -> str:
    now = datetime.now(UTC)
    payload = {**claims, "iat": int(now.timestamp()), "at": now.isoformat()}
    if expires:
        payload["exp"] = int((now + LIFETIME).timestamp())
    return jwt.encode(payload, ticket_key(secret), algorithm=ALGORITHM)


def flow_secret(store: DataStore) -> str | None:
    secret = os.environ.get("FILEORG_SECRET_KEY") or os.environ.get("SECRET_KEY")
    if secret:
        return secret
    path = f"{store.base}/{SECRET_FILE}"
    if not store.is_local or not os.path.exists(path):
        return None
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


def verify(store: DataStore, token: str | None, expected: dict[str, Any]) -> dict[str, Any]:
    """The ticket's claims when it is valid and names exactly `expected`; TicketError else."""
    if not token:
        raise TicketError("this run has no ticket: only the service starts runs")
    secret = flow_secret(store)
    if secret is None:
        raise TicketError("this run's ticket cannot be checked: the service's key is not here")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, ticket_key(secret), algorithms=[ALGORITHM], options={"require": ["iat", "at"]}
        )
    except jwt.PyJWTError as exc:
        raise TicketError(f"this run's ticket is not valid: {exc}") from None
    for name, value in expected.items():
        if claims.get(name) != value:
            raise TicketError(f"this run's ticket does not cover its {name}")
    return claims


def record_refusal(store: DataStore, run_id: str, what: dict[str, Any], reason: str) -> None:
    """Leave the refusal where the operator finds it; the run fails with the same reason."""
    entry = {"at": datetime.now(UTC).isoformat(), "flow_run_id": run_id, **what, "reason": reason}
    payload = json.dumps(entry, ensure_ascii=True, default=str).encode()
    store.write_bytes(f"{store.base}/refusals/{uuid.uuid4()}.json", payload)
