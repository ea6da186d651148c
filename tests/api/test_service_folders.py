"""No root may contain the service's own folders or lie inside one (issue 12 #16): an admin
granted the data folder, and a dry run then planned to move api.db and api-secret-key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.settings import PREFECT_HOME, temporary_settings

from api import db
from storage.settings import get_settings as get_storage_settings
from tests.api.conftest import Api


@pytest.fixture
def prefect_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "opt" / "prefect-home"
    home.mkdir(parents=True)
    with temporary_settings(updates={PREFECT_HOME: str(home)}):
        yield home


@pytest.fixture
def profiles_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "profiles.toml"
    path.write_text('[minio]\nendpoint_url = "http://127.0.0.1:9"\n')
    monkeypatch.setenv("FILEORG_PROFILES_FILE", str(path))
    get_storage_settings.cache_clear()
    yield path
    get_storage_settings.cache_clear()


def _grant(api: Api, root: Path | str) -> Any:
    admin = api.users.get("admin") or api.signup("admin")
    return api.client.post(
        f"/api/v1/admin/users/{admin.id}/roots", json={"root": str(root)}, headers=admin.headers
    )


@pytest.mark.parametrize(
    ("where", "expected_message"),
    [
        ("{data}", "is the data folder"),
        ("{data}/operations", "is inside the data folder"),
        ("{tmp}", "contains the data folder"),  # a parent of it
        ("{prefect}", "is the Prefect home"),
        ("{prefect}/storage", "is inside the Prefect home"),
        ("{tmp}/opt", "contains the Prefect home"),
        ("{etc}", "contains the storage profiles file"),
    ],
)
def test_an_admin_cannot_grant_a_service_folder_nor_a_parent_of_one(
    api: Api,
    data_dir: Path,
    prefect_home: Path,
    profiles_file: Path,
    tmp_path: Path,
    where: str,
    expected_message: str,
) -> None:
    (data_dir / "operations").mkdir()
    (prefect_home / "storage").mkdir()
    root = where.format(data=data_dir, tmp=tmp_path, prefect=prefect_home, etc=tmp_path / "etc")

    response = _grant(api, root)

    assert response.status_code == 400, response.text
    assert expected_message in response.json()["detail"]
    assert (
        api.client.get("/api/v1/auth/me", headers=api.users["admin"].headers).json()["roots"] == []
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL is no file
def test_the_folder_of_a_sqlite_app_database_cannot_be_granted(
    api: Api, database_url: str, prefect_home: Path
) -> None:
    folder = Path(sa.make_url(database_url).database or "").parent

    response = _grant(api, folder)

    assert response.status_code == 400, response.text
    assert "contains the app database" in response.json()["detail"]


def test_other_folders_beside_the_service_folders_are_still_granted(
    api: Api, data_dir: Path, prefect_home: Path, tree: Path
) -> None:
    assert _grant(api, tree / "alice").status_code == 201
    assert _grant(api, tree).status_code == 201  # beside the data folder, not above it


def _stored_grant(api: Api, user_id: str, root: Path) -> None:
    """A grant made before this check (or before the data folder moved under it)."""
    engine = sa.create_engine(db.sync_url(api.settings.resolved_database_url()))
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO root_grants (id, user_id, path, created_at)"
                " VALUES (:id, :user, :path, CURRENT_TIMESTAMP)"
            ),
            {"id": uuid.uuid4().hex, "user": uuid.UUID(user_id).hex, "path": str(root)},
        )
    engine.dispose()


def test_an_old_grant_over_the_data_folder_starts_nothing(
    api: Api, data_dir: Path, prefect_home: Path, tmp_path: Path, tree: Path
) -> None:
    admin = api.signup("admin")
    _stored_grant(api, admin.id, tmp_path)
    schedule = {"root_path": str(tmp_path), "cron": "0 3 * * 0"}

    started = api.start(admin, tmp_path)
    scheduled = api.client.post("/api/v1/schedules", json=schedule, headers=admin.headers)

    for response in (started, scheduled):
        assert response.status_code == 403, response.text
        assert "contains the data folder" in response.json()["detail"]
    assert (api.fake.started, api.fake.schedule_list) == ([], [])
    assert api.started(admin, tree / "alice")  # the same grant, a folder beside the data
