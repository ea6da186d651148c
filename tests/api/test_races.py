"""Races through a real server: concurrent HTTP requests to uvicorn serving the app, on SQLite
and PostgreSQL (issue 12 #1: four simultaneous first signups all became admin).

The server runs in a thread of this process, so that a spy can hold each signup right after
it has looked at the database until all of them have: the race then happens on every run,
and the test checks that it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from api import accounts, db
from api.config import Settings, get_settings
from api.main import create_app
from tests.api.conftest import PASSWORD, _truncate, settings_for
from tests.api.fakes import FakeOrchestrator
from tests.api.test_schedules import _prefect_schedule_ids, _remove_all
from tests.polling import until

SIGNUPS = 4
DEADLINE = 30.0


@contextmanager
def serving(settings: Settings, orchestrator: Any = None) -> Iterator[str]:
    """uvicorn serving a fresh app on a free loopback port; its base URL."""
    app = create_app(orchestrator=orchestrator or FakeOrchestrator(settings.store()))
    app.dependency_overrides[get_settings] = lambda: settings
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        until(lambda: server.started, DEADLINE, "the server to start", every=0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        sock.close()


class HeldAfterLooking:
    """Wraps accounts._no_users: records what each signup saw, then holds it until all
    SIGNUPS have looked, so none of them has inserted its account yet when the others look."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.saw_no_users: list[bool] = []
        self.barrier: asyncio.Barrier | None = None

    async def __call__(self, session: Any) -> bool:
        empty: bool = await self.real(session)
        self.saw_no_users.append(empty)
        if self.barrier is None:
            self.barrier = asyncio.Barrier(SIGNUPS)
        # If the signups were serialized, the wait times out and saw_no_users says so.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.barrier.wait(), DEADLINE)
        return empty


async def _signup_all(base_url: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=DEADLINE) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/auth/signup",
                        json={
                            "email": f"racer{i}@example.org",
                            "username": f"racer{i}",
                            "password": PASSWORD,
                        },
                    )
                    for i in range(SIGNUPS)
                )
            )
        )


def _admins(database_url: str) -> list[tuple[str, bool]]:
    engine = sa.create_engine(db.sync_url(database_url), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT username, is_admin FROM users")).all()
    engine.dispose()
    return [(r[0], bool(r[1])) for r in rows]


def test_simultaneous_first_signups_make_one_admin(
    database_url: str, data_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _truncate(database_url)
    spy = HeldAfterLooking(accounts._no_users)
    monkeypatch.setattr(accounts, "_no_users", spy)
    settings = settings_for(database_url, argon2_memory_kib=8192)

    with serving(settings) as base_url:
        responses = asyncio.run(_signup_all(base_url))

    assert spy.saw_no_users == [True] * SIGNUPS, "the signups did not race"
    assert [r.status_code for r in responses] == [201] * SIGNUPS, [r.text for r in responses]
    users = _admins(database_url)
    assert len(users) == SIGNUPS
    assert sum(is_admin for _, is_admin in users) == 1, users


def test_a_database_with_accounts_has_had_its_first_signup(tmp_path: Any) -> None:
    """Upgrading a database that has users records the claim as taken, so deleting every
    account later does not make the next signup an admin."""
    url = f"sqlite:///{tmp_path}/api.db"
    db.upgrade(url, "0001")
    engine = sa.create_engine(db.sync_url(url), poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (id, email, username, hashed_password, is_admin, is_active,"
                " created_at) VALUES ('00000000000040008000000000000001', 'a@example.org',"
                " 'admin', 'x', 1, 1, CURRENT_TIMESTAMP)"
            )
        )

    db.upgrade(url)

    with engine.connect() as connection:
        claims = connection.execute(sa.text("SELECT id, user_id FROM first_admin")).all()
    engine.dispose()
    assert [tuple(c) for c in claims] == [(1, None)]


class HeldAtTheQuota:
    """Wraps api.schedules._user_lock: holds each request there until all have arrived, so
    they all reach the quota check together. `together` counts the requests let go because
    all had arrived (not by the timeout): the race happened when it is all of them."""

    def __init__(self, real: Any, parties: int) -> None:
        self.real = real
        self.parties = parties
        self.arrived = 0
        self.together = 0
        self.event: asyncio.Event | None = None

    def __call__(self, app: Any, user_id: Any) -> Any:
        self.arrived += 1
        lock = self.real(app, user_id)
        spy = self

        class Held:
            async def __aenter__(self) -> None:
                if spy.event is None:
                    spy.event = asyncio.Event()
                if spy.arrived >= spy.parties:
                    spy.event.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(spy.event.wait(), DEADLINE)
                    spy.together += 1
                await lock.acquire()

            async def __aexit__(self, *exc: object) -> None:
                lock.release()

        return Held()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_simultaneous_schedules_keep_to_the_quota(
    database_url: str,
    data_dir: Any,
    tree: Any,
    scheduled_cleanup: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api import schedules
    from api.orchestrator import PrefectOrchestrator

    _truncate(database_url)
    _remove_all(scheduled_cleanup)
    quota, racers = 2, 5
    spy = HeldAtTheQuota(schedules._user_lock, racers)
    monkeypatch.setattr(schedules, "_user_lock", spy)
    settings = settings_for(database_url, argon2_memory_kib=8192, schedules_per_user=quota)

    with serving(settings, PrefectOrchestrator(timeout=20)) as base_url:
        statuses = asyncio.run(_schedule_all(base_url, tree / "alice", racers))

    assert (spy.arrived, spy.together) == (racers, racers), "the requests did not race"
    assert sorted(statuses) == [201] * quota + [409] * (racers - quota)
    assert len(_prefect_schedule_ids(scheduled_cleanup)) == quota
    _remove_all(scheduled_cleanup)


async def _schedule_all(base_url: str, root: Any, racers: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=DEADLINE) as client:
        body = {"email": "admin@example.org", "username": "admin", "password": PASSWORD}
        token = (await client.post("/api/v1/auth/signup", json=body)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        me = (await client.get("/api/v1/auth/me", headers=headers)).json()
        granted = await client.post(
            f"/api/v1/admin/users/{me['id']}/roots", json={"root": str(root)}, headers=headers
        )
        assert granted.status_code == 201, granted.text
        schedule = {"root_path": str(root), "interval_seconds": 3600}
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/schedules", json=schedule, headers=headers)
                for _ in range(racers)
            )
        )
        return [r.status_code for r in responses]
