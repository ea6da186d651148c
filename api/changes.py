"""When the app database last changed, for api.read_cache: a generation that moves after every
commit that may change what a read shows, whichever process made it.

- This process's commits move it at once: the app's sessions carry their `Changes` in their
  `info` and SQLAlchemy's `after_commit` bumps it (after the commit, never before, so a read
  that starts after the bump sees the change).
- SQLite: `PRAGMA data_version` on a connection of our own, read per request (a few µs, no
  lock taken but the WAL's read mark): it moves after any other connection's commit, this
  process's or another's (`fileorg users create`, a second API). Exact: nothing stale.
- PostgreSQL: statement triggers (migration 0004) `NOTIFY fileorg_changes` on every write to
  users, root_grants, refresh_tokens and operations; one LISTEN connection per process, in a
  thread of its own (a busy event loop cannot delay it), hears another process's commit
  milliseconds later. The connection proves itself every HEARTBEAT seconds; while it has not
  for ALIVE_SECONDS (down, reconnecting, a pooler without LISTEN) `current()` is None and
  nothing is served from the cache. So a change made elsewhere shows within the notice's
  delay, at most ALIVE_SECONDS when the link dies unnoticed.

Every change counts, whatever it touched: simple, and writes are rare beside reads here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

CHANNEL = "fileorg_changes"
HEARTBEAT = 0.5
ALIVE_SECONDS = 2.0
RETRY_SECONDS = 1.0
LINK: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
}
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
    """The notices are heard by a thread of its own, so a busy event loop (100 connections'
    requests) cannot delay the heartbeat past its bound; the loop takes what was heard at its
    next `current()`, as SQLite's data_version is read."""

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._heard = 0  # notices (and reconnections) counted by the thread
        self._taken = 0  # ... and taken by the event loop
        self._alive_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="database-changes", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, ALIVE_SECONDS + HEARTBEAT)
            self._thread = None
        self._alive_at = None

    def current(self) -> int | None:
        alive_at = self._alive_at  # read first: what was heard before it is taken below
        heard = self._heard
        if heard != self._taken:
            self._taken = heard
            self.bump()
        alive = alive_at is not None and time.monotonic() - alive_at < ALIVE_SECONDS
        return self.generation if alive else None

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except (psycopg.Error, OSError) as exc:
                log.warning("database changes: %s: %s", type(exc).__name__, exc)
            self._alive_at = None
            self._stop.wait(RETRY_SECONDS)

    def _follow(self) -> None:
        # A link that dies without a word fails within seconds instead of hanging the query.
        with psycopg.connect(self._conninfo, autocommit=True, **LINK) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self._heard += 1  # what changed before LISTEN was never heard
            while not self._stop.is_set():
                started = time.monotonic()
                connection.execute("SELECT 1")
                # Every notice of a commit made before this query is in by now: the ones it
                # brought are counted first (timeout 0), then the link counts as alive.
                for _ in connection.notifies(timeout=0):
                    self._heard += 1
                self._alive_at = started
                for _ in connection.notifies(timeout=HEARTBEAT):
                    self._heard += 1


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
