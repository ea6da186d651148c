"""What admins do: list users, grant and revoke roots."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from api import roots
from api.errors import BadRequest, NotFound
from api.models import RootGrant, User
from api.schemas import RootGrantPublic, RootGrantsPublic, UserPublic, UsersPublic
from api.service_folders import ServiceFolders, refuse_overlap
from storage import revocations
from storage.locations import DataStore


async def root_paths(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    return list(
        await session.scalars(
            select(RootGrant.path).where(RootGrant.user_id == user_id).order_by(RootGrant.path)
        )
    )


async def user_public(session: AsyncSession, user: User) -> UserPublic:
    public = UserPublic.model_validate(user)
    public.roots = await root_paths(session, user.id)
    return public


async def users(session: AsyncSession, limit: int, offset: int) -> UsersPublic:
    count = await session.scalar(select(func.count()).select_from(User))
    rows = await session.scalars(
        select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    return UsersPublic(data=[await user_public(session, u) for u in rows], count=count or 0)


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def _public(grant: RootGrant) -> RootGrantPublic:
    return RootGrantPublic(id=grant.id, root=grant.path, created_at=grant.created_at)


async def grants(session: AsyncSession, user_id: uuid.UUID) -> RootGrantsPublic:
    user = await user_by_id(session, user_id)
    rows = list(
        await session.scalars(
            select(RootGrant).where(RootGrant.user_id == user.id).order_by(RootGrant.path)
        )
    )
    return RootGrantsPublic(data=[_public(g) for g in rows], count=len(rows))


async def grant(
    session: AsyncSession, user_id: uuid.UUID, raw: str, folders: ServiceFolders
) -> RootGrantPublic:
    """Idempotent: granting a root twice returns the first grant. Never a service folder, a
    folder inside one or a parent of one (400)."""
    user = await user_by_id(session, user_id)
    path = roots.grantable(raw)
    refuse_overlap(path, folders, BadRequest)
    existing = await session.scalar(
        select(RootGrant).where(RootGrant.user_id == user.id, RootGrant.path == path)
    )
    if existing is not None:
        return _public(existing)
    row = RootGrant(user_id=user.id, path=path)
    session.add(row)
    await session.commit()
    return _public(row)


async def revoke(
    session: AsyncSession, store: DataStore, user_id: uuid.UUID, raw: str
) -> list[str]:
    """Delete the grant; the revoked roots as they were stored. Each revoke is first left in
    the data folder (storage.revocations) so that runs authorized before it refuse the root."""
    user = await user_by_id(session, user_id)
    # A grant is matched as stored (canonical) or as given, so a root deleted since can go too.
    candidates = roots.revocable(raw)
    where = (RootGrant.user_id == user.id, RootGrant.path.in_(candidates))
    revoked = list(await session.scalars(select(RootGrant.path).where(*where)))
    if not revoked:
        raise NotFound("no such root granted to this user")
    for path in revoked:
        await run_in_threadpool(revocations.record, store, str(user.id), path)
    await session.execute(delete(RootGrant).where(*where))
    await session.commit()
    return revoked
