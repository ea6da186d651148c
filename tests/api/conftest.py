"""The API under test: one app per test on SQLite and on PostgreSQL, with a fake orchestrator.

PostgreSQL is the server at 127.0.0.1:5432 (user postgres, trust): each session creates its own
database and drops it at the end. Without the server the PostgreSQL tests skip locally and fail
when CI=true.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import db
from api.config import Settings, get_settings
from api.keeper import keeper
from api.main import create_app
from api.models import Base
from api.ratelimit import RateLimiter
from storage.locations import DataStore
from tests.api.fakes import FakeOrchestrator

PG_ADMIN_URL = os.environ.get("FILEORG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery"


def _postgres_database() -> Iterator[str]:
    name = f"fileorg_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database per backend and session."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('db')}/api.db"])
    else:
        urls = _postgres_database()
    url = next(urls)
    db.upgrade(url)
    yield url
    next(urls, None)


def _truncate(url: str) -> None:
    engine = sa.create_engine(db.sync_url(url), poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@dataclass
class User:
    id: str
    username: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Api:
    client: TestClient
    fake: FakeOrchestrator
    settings: Settings
    store: DataStore
    users: dict[str, User] = field(default_factory=dict)

    def signup(self, username: str) -> User:
        response = self.client.post(
            "/api/v1/auth/signup",
            json={"email": f"{username}@example.org", "username": username, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        tokens = response.json()
        me = self.client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ).json()
        user = User(me["id"], username, tokens["access_token"], tokens["refresh_token"])
        self.users[username] = user
        return user

    def grant(self, admin: User, user: User, root: Path | str) -> None:
        response = self.client.post(
            f"/api/v1/admin/users/{user.id}/roots", json={"root": str(root)}, headers=admin.headers
        )
        assert response.status_code == 201, response.text

    def start(self, user: User, root: Path | str, **body: Any) -> Any:
        return self.client.post(
            "/api/v1/operations", json={"root_path": str(root), **body}, headers=user.headers
        )

    def started(self, user: User, root: Path | str, **body: Any) -> str:
        response = self.start(user, root, **body)
        assert response.status_code == 202, response.text
        operation_id: str = response.json()["operation_id"]
        return operation_id

    def settle(self) -> None:
        """What the keeper's sweep does every few seconds, now: confirm every row that looks
        live against the orchestrator and the data folder (api.keeper)."""
        app: Any = self.client.app
        self.client.portal.call(lambda: keeper(app).sweep(everything=True))  # type: ignore[union-attr]

    def shown(self, user: User, op_id: str) -> dict[str, Any]:
        """The operation as `user` reads it (GET /api/v1/operations/{id})."""
        response = self.client.get(f"/api/v1/operations/{op_id}", headers=user.headers)
        found: dict[str, Any] = response.json()
        return found


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": "s" * 64,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 256,
        "migrate_on_startup": False,
        "auth_attempts_per_address": 1000,
        "signup_attempts_per_address": 1000,
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def served(database_url: str) -> Iterator[tuple[FastAPI, TestClient]]:
    """One app and client per backend and session: building a FastAPI app costs ~0.35 s and a
    new engine recompiles every statement, so tests share them and reset the state instead."""
    settings = settings_for(database_url)
    app = create_app(orchestrator=FakeOrchestrator(settings.store()))
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app) as client:
        yield app, client


@pytest.fixture
def make_api(served: tuple[FastAPI, TestClient], database_url: str, data_dir: Path) -> Any:
    """An empty database and fresh app state, with these settings overrides."""
    app, client = served

    def build(**overrides: Any) -> Api:
        _truncate(database_url)
        settings = settings_for(database_url, **overrides)
        fake = FakeOrchestrator(settings.store())
        app.dependency_overrides[get_settings] = lambda: settings
        app.state.orchestrator = fake
        app.state.limiter = RateLimiter(settings.auth_window_seconds)
        built = Api(client, fake, settings, settings.store())
        fake.changed = built.settle
        return built

    return build


@pytest.fixture
def api(make_api: Any) -> Api:
    built: Api = make_api()
    return built


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Roots to grant: /srv/alice with a photos folder, and /srv/alice2 beside it."""
    srv = tmp_path / "srv"
    for folder in ("alice/photos", "alice2", "bob"):
        (srv / folder).mkdir(parents=True)
    (srv / "alice" / "photos" / "cat.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    return srv


@pytest.fixture
def alice(api: Api, tree: Path) -> User:
    """alice, granted tree/alice by the admin (the first account)."""
    admin, alice = api.signup("admin"), api.signup("alice")
    api.grant(admin, alice, tree / "alice")
    return alice


@pytest.fixture
def scheduled_cleanup(prefect_server: str) -> str:
    """The scheduled-cleanup deployment registered as the runner registers it (no runner:
    scheduled runs stay scheduled, which is what these tests read). Registered for each test:
    the `prefect deploy` test removes what it registered on the shared server."""
    from flows.organize import organize_flow

    deployment = organize_flow.to_deployment(
        name="scheduled-cleanup", parameters={"operation_id": ""}
    )
    deployment_id = deployment.apply()  # type: ignore[union-attr]
    return str(deployment_id)


@pytest.fixture
def runner(
    prefect_server: str, data_dir: Path, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The deployments' runner of the real stack, on the test's Prefect server and data folder."""
    from tests.api.stack import RUNNER, runner_env, running  # stack imports this module

    env = runner_env(prefect_server, data_dir)
    with running(RUNNER, env=env, log=tmp_path / "runner.log") as (process,):
        yield process
