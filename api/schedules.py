"""The operator's limits on schedules: the shortest interval and the number per user.

The cron rule is in storage.cron (the CLI's too) and the request schema applies it; these two
are settings, so they are checked when a schedule is created. The quota is counted and the
schedule created under one lock per user: an asyncio lock in the process, plus a PostgreSQL
advisory lock across processes (a SQLite database serves one process: `fileorg serve`).
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.config import Settings
from api.errors import Conflict

QUOTA_LOCK_KEY = 0x0F11E0A8  # with the user's key: pg_advisory_xact_lock(int, int)


def check_interval(interval_seconds: int | None, settings: Settings) -> None:
    """422, as the schema's own checks answer, for an interval under the operator's minimum."""
    shortest = settings.min_schedule_interval_seconds
    if interval_seconds is None or interval_seconds >= shortest:
        return
    raise RequestValidationError(
        [
            {
                "type": "greater_than_equal",
                "loc": ("body", "interval_seconds"),
                "msg": f"a schedule runs at most every {shortest} s: give at least {shortest} "
                "seconds (FILEORG_MIN_SCHEDULE_INTERVAL_SECONDS)",
                "input": interval_seconds,
            }
        ]
    )


def _user_lock(app: FastAPI, user_id: uuid.UUID) -> asyncio.Lock:
    locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] | None = getattr(
        app.state, "schedule_locks", None
    )
    if locks is None:
        locks = app.state.schedule_locks = weakref.WeakValueDictionary()
    lock = locks.get(user_id)
    if lock is None:
        lock = locks[user_id] = asyncio.Lock()
    return lock


@asynccontextmanager
async def within_quota(
    app: FastAPI,
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    count: Callable[[], Awaitable[int]],
) -> AsyncIterator[None]:
    """Run the body (which creates one schedule) only while the user is under the quota."""
    async with _user_lock(app, user_id):
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:key, :user)"),
                {"key": QUOTA_LOCK_KEY, "user": user_id.int % 2**31},
            )
        try:
            held = await count()
            if held >= settings.schedules_per_user:
                raise Conflict(
                    f"you have {held} schedules, the most allowed "
                    f"({settings.schedules_per_user}): delete one first"
                )
            yield
        finally:
            await session.commit()  # ends the transaction, and with it the advisory lock
