"""What GET /operations, GET /operations/{id} and GET /auth/me show, rendered to JSON bytes once
per change of the app database (api.changes) and handed out as they are until the next one.

A read is (what, the user, its parameters): the user's page of operations, one operation, the
user's own account. Who a token's user is (the account exists and is active, the login is not
revoked: api.deps) is kept the same way, so a logout, a deactivation, a new grant, a status the
keeper writes or a row another process writes is a change, and the next request (in another
process: within api.changes' bound) renders afresh. A render that started before a change is
never kept. One render per key and generation, however many requests wait on it: after a
change, 100 connections cost one query, not 100.

Bounded: MAX_ENTRIES keys and MAX_BYTES of bodies, the least recently used dropped first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import admin, operation_reads
from api.changes import Changes
from api.errors import Unauthorized
from api.models import User

MAX_ENTRIES = 10_000
MAX_BYTES = 64 * 2**20
SMALL = 64  # what a kept identity is counted as
JSON = "application/json"
T = TypeVar("T")


class Memo:
    """Values by key, valid for one generation of the database."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._flights: dict[tuple[Hashable, int, bool], asyncio.Future[Any]] = {}
        changes.on_change(self.clear)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    async def get(self, key: Hashable, render: Callable[[], Awaitable[T]]) -> T:
        trusted = self.changes.current() is not None
        if trusted:  # else changes elsewhere cannot be seen now: nothing kept is served
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return cast(T, found[0])
        # A request joins a render begun in this generation: what it reads is at most that
        # render's age (untrusted: elsewhere's changes unseen, as for a render of its own).
        flight_key = (key, self.changes.generation, trusted)
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(render())
            self._flights[flight_key] = flight
            flight.add_done_callback(partial(self._landed, flight_key))
        # shielded: a client that goes away does not cancel the render the others wait on
        return cast(T, await asyncio.shield(flight))

    def peek(self, key: Hashable) -> Any | None:
        """The kept value, if it may be served now; None: ask `get`."""
        if self.changes.current() is None:
            return None
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def _landed(self, flight_key: tuple[Hashable, int, bool], flight: asyncio.Future[Any]) -> None:
        del self._flights[flight_key]
        if flight.cancelled() or flight.exception() is not None:
            return  # errors (404, 401) are raised to the waiting requests, never kept
        key, generation, trusted = flight_key
        if trusted and self.changes.generation == generation:  # no change since it began
            self._keep(key, flight.result())

    def _keep(self, key: Hashable, value: Any) -> None:
        size = len(value) if isinstance(value, bytes) else SMALL
        if size > MAX_BYTES // 4:
            return
        self._entries[key] = (value, size)
        self._bytes += size
        while len(self._entries) > MAX_ENTRIES or self._bytes > MAX_BYTES:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped


def _json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def answer_key(user_id: uuid.UUID, path: str, query: bytes) -> tuple[uuid.UUID, str, bytes]:
    """A read's key: the user and the request as sent (api.fast_reads looks it up as is)."""
    return (user_id, path, query)


def identity_key(user_id: uuid.UUID, family: str) -> tuple[str, uuid.UUID, str]:
    """Whether the user of this login may read (api.deps.reader): True, or False."""
    return ("signed in", user_id, family)


@dataclass(frozen=True)
class Reader:
    """The cached reads of one authenticated user and request (api.deps.reader)."""

    memo: Memo
    sessions: async_sessionmaker[AsyncSession]
    user_id: uuid.UUID
    key: Hashable  # answer_key of the request

    async def _answer(self, render: Callable[[AsyncSession], Awaitable[bytes]]) -> Response:
        async def rendered() -> bytes:
            async with self.sessions() as session:
                return await render(session)

        return Response(await self.memo.get(self.key, rendered), media_type=JSON)

    async def operations(
        self, status: str | None, limit: int, offset: int, cursor: str | None
    ) -> Response:
        async def render(session: AsyncSession) -> bytes:
            found = await operation_reads.page(session, self.user_id, status, limit, offset, cursor)
            return _json(found)

        return await self._answer(render)

    async def operation(self, operation_id: uuid.UUID) -> Response:
        async def render(session: AsyncSession) -> bytes:
            found = await operation_reads.owned(session, self.user_id, operation_id)
            return _json(operation_reads.public(found))

        return await self._answer(render)

    async def me(self) -> Response:
        async def render(session: AsyncSession) -> bytes:
            user = await session.get(User, self.user_id)
            if user is None:  # gone since its token was checked
                raise Unauthorized("invalid or expired token")
            return _json(await admin.user_public(session, user))

        return await self._answer(render)
