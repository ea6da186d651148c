"""/api/v1/admin: users and their granted roots (admins only)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from api import admin
from api.deps import AdminUser, PageDep, ServiceFoldersDep, SessionDep, StoreDep
from api.errors import ApiError
from api.orchestrator import OrchestratorError
from api.routes import errors
from api.routes.schedules import get_scheduler, pause_revoked
from api.schemas import RootGrantCreate, RootGrantPublic, RootGrantsPublic, UsersPublic

log = logging.getLogger("api")
router = APIRouter(prefix="/admin", tags=["admin"], responses=errors(401, 403))


@router.get("/users")
async def list_users(_: AdminUser, session: SessionDep, page: PageDep) -> UsersPublic:
    return await admin.users(session, page.limit, page.offset)


@router.get("/users/{user_id}/roots", responses=errors(404))
async def list_roots(user_id: uuid.UUID, _: AdminUser, session: SessionDep) -> RootGrantsPublic:
    return await admin.grants(session, user_id)


@router.post(
    "/users/{user_id}/roots", status_code=status.HTTP_201_CREATED, responses=errors(400, 404)
)
async def grant_root(
    user_id: uuid.UUID,
    body: RootGrantCreate,
    _: AdminUser,
    session: SessionDep,
    folders: ServiceFoldersDep,
) -> RootGrantPublic:
    return await admin.grant(session, user_id, body.root, folders)


@router.delete(
    "/users/{user_id}/roots", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404)
)
async def revoke_root(
    user_id: uuid.UUID,
    root: Annotated[str, Query(min_length=1, max_length=4096)],
    _: AdminUser,
    session: SessionDep,
    store: StoreDep,
    request: Request,
) -> None:
    """Revoke a grant. The user's schedules on it are paused (each stays listed, inactive);
    runs authorized before the revoke refuse the root when they start or reach apply."""
    revoked = await admin.revoke(session, store, user_id, root)
    remaining = await admin.root_paths(session, user_id)
    try:
        scheduler = get_scheduler(request)
        await pause_revoked(scheduler, user_id, revoked, remaining)
    except (ApiError, OrchestratorError) as exc:  # the revoke stands; its runs refuse anyway
        log.warning("revoked %s of user %s; schedules not paused: %s", revoked, user_id, exc)
