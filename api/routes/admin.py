"""/api/v1/admin: users and their granted roots (admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api import admin, schedules
from api.deps import (
    AdminUser,
    OrchestratorDep,
    PageDep,
    ServiceFoldersDep,
    SessionDep,
    StoreDep,
)
from api.routes import errors
from api.schemas import RootGrantCreate, RootGrantPublic, RootGrantsPublic, UsersPublic

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
    orchestrator: OrchestratorDep,
) -> None:
    """Revoke a grant. The user's schedules on it are paused (each stays listed, inactive);
    runs authorized before the revoke refuse the root when they start or reach apply."""
    await schedules.revoke_grant(session, store, orchestrator, user_id, root)
