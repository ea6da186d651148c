"""Settings: secrets, the default database, CORS, start-up migrations, operator commands."""

from __future__ import annotations

import gc
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api import db
from api.config import ConfigError, Settings, get_settings
from api.main import SERVER_GC, create_app
from tests.api.conftest import PASSWORD, Api
from tests.api.fakes import FakeOrchestrator

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("secret", "environment", "expected_ok"),
    [
        ("changethis", "production", False),
        ("short-but-random", "production", False),
        ("x" * 40, "production", True),
        ("changethis", "development", True),
    ],
)
def test_weak_secrets_are_refused_outside_development(
    data_dir: Path, secret: str, environment: str, expected_ok: bool
) -> None:
    settings = Settings(secret_key=secret, environment=environment)  # type: ignore[call-arg]
    if expected_ok:
        assert settings.resolved_secret() == secret
    else:
        with pytest.raises(ConfigError):
            settings.resolved_secret()


def test_a_generated_secret_is_kept_private_in_the_data_folder(data_dir: Path) -> None:
    first = Settings().resolved_secret()
    second = Settings().resolved_secret()
    assert first == second
    assert len(first) >= 48
    mode = stat.S_IMODE(os.stat(data_dir / "api-secret-key").st_mode)
    assert mode == 0o600


def test_the_seed_names_and_the_defaults(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().resolved_database_url() == f"sqlite:///{data_dir}/api.db"
    assert Settings().cors_origins == []
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/d")
    monkeypatch.setenv("FILEORG_CORS_ORIGINS", "https://a.example, https://b.example")
    expected_origins = ["https://a.example", "https://b.example"]
    assert Settings().resolved_database_url() == "postgresql://u@h/d"
    assert Settings().cors_origins == expected_origins


def test_a_fresh_start_migrates_and_refuses_a_weak_secret(data_dir: Path) -> None:
    app = create_app(orchestrator=FakeOrchestrator(Settings().store()))
    app.dependency_overrides[get_settings] = lambda: Settings(  # type: ignore[call-arg]
        argon2_time_cost=1, argon2_memory_kib=256
    )
    with TestClient(app) as client:
        body = {"email": "a@example.org", "username": "alice", "password": PASSWORD}
        assert client.post("/api/v1/auth/signup", json=body).status_code == 201
    engine = sa.create_engine(db.sync_url(f"sqlite:///{data_dir}/api.db"))
    assert {"users", "operations", "alembic_version"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()

    app.dependency_overrides[get_settings] = lambda: Settings(secret_key="changeme")  # type: ignore[call-arg]
    with pytest.raises(ConfigError), TestClient(app):
        pass


def test_full_collections_are_rare_while_the_app_serves_and_as_before_after(
    data_dir: Path,
) -> None:
    """A full collection stalls every waiting request (the p99's spikes, bench/README): the
    served app makes them rare; the process's own thresholds come back when it stops."""
    app = create_app(orchestrator=FakeOrchestrator(Settings().store()))
    app.dependency_overrides[get_settings] = lambda: Settings(  # type: ignore[call-arg]
        argon2_time_cost=1, argon2_memory_kib=256
    )
    previous = gc.get_threshold()
    gc.set_threshold(701, 11, 12)  # this process's own, whatever an earlier test's app left
    try:
        with TestClient(app):
            serving = gc.get_threshold()
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*previous)

    assert (serving, after) == (SERVER_GC, (701, 11, 12))


@pytest.mark.parametrize(
    ("origins", "expected_allow"), [([], None), (["https://ui.example"], "https://ui.example")]
)
def test_cors_allows_only_configured_origins(
    make_api: Any, origins: list[str], expected_allow: str | None
) -> None:
    api: Api = make_api(cors_origins=origins)
    response = api.client.options(
        "/api/v1/operations",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.headers.get("access-control-allow-origin") == expected_allow


def _fileorg(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FILEORG_DATA_URL": str(data_dir), "FILEORG_ARGON2_MEMORY_KIB": "256"}
    return subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_operator_commands_upgrade_and_create_an_admin(data_dir: Path) -> None:
    assert _fileorg(data_dir, "db", "upgrade").returncode == 0
    made = _fileorg(
        data_dir,
        "users",
        "create",
        "--username",
        "root",
        "--email",
        "r@example.org",
        "--password",
        PASSWORD,
        "--admin",
    )
    assert made.returncode == 0, made.stderr
    again = _fileorg(
        data_dir,
        "users",
        "create",
        "--username",
        "root",
        "--email",
        "r@example.org",
        "--password",
        PASSWORD,
    )
    assert (again.returncode, again.stderr.strip()) == (
        2,
        "error: this email or username cannot be used",
    )
    engine = sa.create_engine(db.sync_url(f"sqlite:///{data_dir}/api.db"))
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT username, is_admin FROM users")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("root", True)]


def test_operator_commands_refuse_a_common_password_in_one_line(data_dir: Path) -> None:
    made = _fileorg(
        data_dir,
        *("users", "create", "--username", "root", "--email", "r@example.org"),
        *("--password", "password", "--admin"),
    )

    assert made.returncode == 2
    assert made.stderr.startswith("error: invalid account: the password is too easy to guess")
    assert len(made.stderr.splitlines()) == 1
