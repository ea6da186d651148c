"""The app database: users, the first-admin claim, granted roots, refresh tokens, operations
(SQLAlchemy 2 tables).

Operations here are the API's view (owner, parameters, flow-run id, schedule) and a cache of
where each stands (the run's status; the record's state, stage, stage timings and summary,
kept by api.keeper); the operation's own record and manifests live in the data folder,
written by the flows, and stay the source of truth: the cache can always be rebuilt from them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    event,
    inspect,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from storage.operations import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FirstAdmin(Base):
    """The one claim to be the admin by signing up first: a row with the primary key 1.

    Two signups racing on an empty database both see no users; both try to insert this row in
    the transaction that creates their account, and the primary key lets exactly one commit
    (on SQLite and PostgreSQL alike, whatever the isolation level). The row stays: deleting
    every account later does not make the next signup an admin (use `fileorg users create
    --admin`)."""

    __tablename__ = "first_admin"
    __table_args__ = (CheckConstraint("id = 1", name="ck_first_admin_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RootGrant(Base):
    __tablename__ = "root_grants"
    __table_args__ = (UniqueConstraint("user_id", "path"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # canonical (realpath) at grant time
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefreshToken(Base):
    """One issued refresh token, stored hashed; a rotated one that comes back revokes its family."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_owner_created", "owner_id", "created_at"),
        Index("ix_operations_status", "status"),
        Index("ix_operations_flow_run", "flow_run_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    operation_type: Mapped[str] = mapped_column(String(16))  # organize | dedupe | scan | rollback
    root_path: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)
    # A rollback is an operation of its own over the manifests of the one it undoes.
    source_operation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("operations.id", ondelete="CASCADE")
    )
    deployment: Mapped[str] = mapped_column(String(64))  # the current (last) run's deployment
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # _touch
    # The cache of the operation's record (api.cache.fill): what reads show without opening
    # the data folder. `synced_at` is when it was last confirmed; NULL: never (rebuilt soon).
    state: Mapped[str | None] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(32))
    stages: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A run a schedule started (api.scheduled_runs): the Prefect deployment schedule's id.
    schedule_id: Mapped[str | None] = mapped_column(String(64))

    @property
    def manifest_id(self) -> uuid.UUID:
        """Whose data folder the plan, files and report are read from."""
        return self.source_operation_id or self.id


UNSEEN = frozenset({"synced_at", "updated_at"})


@event.listens_for(Session, "before_flush")
def _touch(session: Session, _context: object, _instances: object) -> None:
    """`updated_at` moves when an operation changes, not when the cache only confirms it."""
    for found in session.dirty:
        if not isinstance(found, Operation):
            continue
        state = inspect(found)
        if any(state.attrs[k].history.has_changes() for k in set(state.attrs.keys()) - UNSEEN):
            found.updated_at = utcnow()
