"""Run tickets: signed by the API's key, checked claim by claim, expiring."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from storage import tickets
from storage.locations import DataStore
from storage.tickets import TicketError


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataStore:
    monkeypatch.delenv("FILEORG_SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    (tmp_path / "api-secret-key").write_text("k" * 64 + "\n")  # as the API keeps it
    return DataStore(str(tmp_path))


def test_a_ticket_covers_exactly_what_it_names(store: DataStore) -> None:
    token = tickets.sign("k" * 64, {"kind": "apply", "op": "1", "root": "/srv/a"})
    claims = tickets.verify(store, token, {"kind": "apply", "op": "1"})
    assert claims["root"] == "/srv/a" and claims["exp"] > claims["iat"]
    for other in ({"kind": "rollback"}, {"op": "2"}, {"root": "/srv/b"}):
        with pytest.raises(TicketError, match="does not cover"):
            tickets.verify(store, token, {"kind": "apply", "op": "1", **other})


def test_forged_expired_and_missing_tickets_are_refused(store: DataStore) -> None:
    with pytest.raises(TicketError, match="no ticket"):
        tickets.verify(store, None, {})
    with pytest.raises(TicketError, match="not valid"):
        tickets.verify(store, tickets.sign("x" * 64, {"kind": "apply"}), {"kind": "apply"})
    # signed with the secret itself (how access tokens are signed): not a ticket
    raw = jwt.encode({"kind": "apply", "iat": 1, "at": "x"}, "k" * 64, algorithm="HS256")
    with pytest.raises(TicketError, match="not valid"):
        tickets.verify(store, raw, {"kind": "apply"})
    expired = jwt.encode(
        {"kind": "apply", "iat": 1, "at": "x", "exp": 2}, tickets.ticket_key("k" * 64), "HS256"
    )
    with pytest.raises(TicketError, match="expired"):
        tickets.verify(store, expired, {"kind": "apply"})
