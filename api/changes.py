"""When the app database last changed, for api.read_cache: a generation that moves after every
commit that may change what a read shows, whichever process made it.

- This process's commits move it at once: the app's sessions carry their `Changes` in their
  `info` and SQLAlchemy's `after_commit` bumps it (after the commit, never before, so a read
  that starts after the bump sees the change).
- SQLite: `PRAGMA data_version` on a connection of our own, read per request (a few µs, no
  lock taken but the WAL's read mark): it moves after any other connection's commit, this
  process's or another's (`fileorg users create`, a second API). Exact: nothing stale.
- PostgreSQL: statement triggers (migration 0004) `NOTIFY fileorg_changes` on every write to
  users, root_grants, refresh_tokens and operations; one LISTEN connection per process sees
  another process's commit milliseconds later. The connection proves itself every HEARTBEAT
  seconds; while it has not for ALIVE_SECONDS (down, reconnecting, a pooler without LISTEN)
  `current()` is None and nothing is served from the cache. So a change made elsewhere shows
  within the notification's delay, at most ALIVE_SECONDS when the link dies unnoticed.

Every change counts, whatever it touched: simple, and writes are rare beside reads here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

CHANNEL = "fileorg_changes"
HEARTBEAT = 0.5
ALIVE_SECONDS = 2.0
RETRY_SECONDS = 1.0
log = logging.getLogger("api.changes")


class Changes:
    """The generation of the app database as this process knows it; `current()` per read."""

    def __init__(self) -> None:
        self.generation = 0
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def bump(self) -> None:
        self.generation += 1
        for listener in self._listeners:
            listener()

    def current(self) -> int | None:
        """The generation now, after looking for changes made elsewhere; None: unknown (do not
        serve what was cached)."""
        return self.generation

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


class SQLiteChanges(Changes):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._version: int | None = None

    async def start(self) -> None:
        # timeout=0: a read never waits on the event loop; a busy database reads as a change.
        self._connection = sqlite3.connect(
            self._path, timeout=0, isolation_level=None, check_same_thread=False
        )

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def current(self) -> int | None:
        if self._connection is None:
            return None
        try:
            # fetchall: the statement runs to its end, so no read transaction stays open
            # (an open one would keep the WAL from being checkpointed).
            version = self._connection.execute("PRAGMA data_version").fetchall()[0][0]
        except sqlite3.Error:
            self.bump()
            return None
        if version != self._version:
            self._version = version
            self.bump()
        return self.generation


class PostgresChanges(Changes):
    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._alive_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="database-changes")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._alive_at = None

    def current(self) -> int | None:
        alive = self._alive_at is not None and time.monotonic() - self._alive_at < ALIVE_SECONDS
        return self.generation if alive else None

    async def _listen(self) -> None:
        while True:
            try:
                await self._follow()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("database changes: %s: %s", type(exc).__name__, exc)
            self._alive_at = None
            await asyncio.sleep(RETRY_SECONDS)

    async def _follow(self) -> None:
        connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        async with connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            self.bump()  # what changed before LISTEN was never heard
            while True:
                started = time.monotonic()
                await asyncio.wait_for(connection.execute("SELECT 1"), ALIVE_SECONDS / 2)
                # Every notification of a commit made before this query is in by now: the
                # ones it brought are taken first (timeout 0), then the link counts as alive.
                async for _ in connection.notifies(timeout=0):
                    self.bump()
                self._alive_at = started
                async for _ in connection.notifies(timeout=HEARTBEAT):
                    self.bump()


def for_database(url: str) -> Changes:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return Changes()  # no other connection can see it
        return SQLiteChanges(parsed.database)
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresChanges(plain)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    changes: Any = session.info.get("changes")
    if isinstance(changes, Changes):
        changes.bump()
