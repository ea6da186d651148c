"""The service's own folders: no root may contain one or lie inside one (issue 12 #16).

A root over the data folder would let a dry run plan to move `api.db` and `api-secret-key`
and list every user's operation files; a root over the Prefect home reaches every run's
parameters; a root over the profiles file reaches the storage credentials. Checked when an
admin grants a root (400) and when a user starts an operation or a schedule (403), so a grant
made before a folder moved under it is refused too.

The folders, each canonical (realpath) when local:
- the data folder (FILEORG_DATA_URL: records, manifests, journals; by default api.db and the
  generated secret), a local folder or an object-store prefix;
- the app database, when it is a SQLite file (a root containing it contains its -wal and
  lock files too);
- the Prefect home (PREFECT_HOME) and Prefect's database when it is a SQLite file elsewhere;
- the storage profiles file (FILEORG_PROFILES_FILE).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sqlalchemy.engine import make_url

from api.config import Settings
from api.errors import ApiError
from storage.objects import is_object_url, parse_object_url
from storage.roots import within
from storage.settings import get_settings as get_storage_settings

ServiceFolders = Mapping[str, str]


def service_folders(settings: Settings) -> dict[str, str]:
    """What no root may overlap, by what it is to the user ("the data folder"...)."""
    from prefect.settings import get_current_settings

    prefect = get_current_settings()
    found = {"the data folder": _canonical(settings.data_url)}
    app_db = _sqlite_file(settings.resolved_database_url())
    if app_db is not None:
        found["the app database"] = app_db
    found["the Prefect home"] = _canonical(str(prefect.home))
    prefect_url = prefect.server.database.connection_url
    prefect_db = _sqlite_file(prefect_url.get_secret_value()) if prefect_url else None
    if prefect_db is not None:
        found["the Prefect database"] = prefect_db
    profiles = get_storage_settings().profiles_file
    if profiles:
        found["the storage profiles file"] = _canonical(profiles)
    return found


def refuse_overlap(root: str, folders: ServiceFolders, refused: type[ApiError]) -> None:
    """`refused` (naming what, not where) if `root` contains or lies inside a service folder."""
    for what, folder in folders.items():
        if folder == root:
            raise refused(f"{root} is {what} of this service: it cannot be a root")
        if within(folder, root):
            raise refused(f"{root} contains {what} of this service: it cannot be a root")
        if within(root, folder):
            raise refused(f"{root} is inside {what} of this service: it cannot be a root")


def _canonical(path: str) -> str:
    if is_object_url(path):
        return parse_object_url(path).url
    return os.path.realpath(os.path.expanduser(path))


def _sqlite_file(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return _canonical(parsed.database or "")
