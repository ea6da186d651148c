"""The database: one async engine per app (SQLite via aiosqlite, PostgreSQL via psycopg 3),
and alembic migrations (applied at start-up or by `fileorg db upgrade`).

A URL is given in its plain form (`sqlite:///path`, `postgresql://user@host/db`); the driver
is chosen here, async for the app and sync for alembic.
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from api.changes import Changes

MIGRATIONS = Path(__file__).parent / "migrations"


def _with_driver(url: str, sqlite_driver: str | None) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername=f"sqlite+{sqlite_driver}" if sqlite_driver else "sqlite")
    raise ValueError(f"unsupported database {backend!r}: use sqlite:// or postgresql://")


def async_url(url: str) -> URL:
    return _with_driver(url, "aiosqlite")


def sync_url(url: str) -> URL:
    return _with_driver(url, None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout queues writers instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        engine = create_async_engine(target, pool_size=20, max_overflow=20)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(target, pool_size=20, max_overflow=20, pool_pre_ping=True)


def sessionmaker(
    engine: AsyncEngine, changes: Changes | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions whose commits move `changes` (api.changes: the read cache's generation)."""
    return async_sessionmaker(engine, expire_on_commit=False, info={"changes": changes})


@asynccontextmanager
async def session_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Passed as an attribute, not an ini option: a password may hold '%', which ini interpolates.
    config.attributes["url"] = sync_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`; processes starting together (uvicorn --workers) take turns:
    an advisory lock on PostgreSQL (in env.py), a file lock beside a SQLite database."""
    target = sync_url(url)
    database = target.database
    if target.get_backend_name() != "sqlite" or not database or database == ":memory:":
        command.upgrade(alembic_config(url), revision)
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        command.upgrade(alembic_config(url), revision)
