"""Alembic environment: a sync engine on the URL the caller put in `config.attributes["url"]`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from api.models import Base

# Any fixed number: PostgreSQL processes starting together migrate one at a time.
MIGRATION_LOCK = 0x0F11E0A6


def run_migrations_online() -> None:
    url = context.config.attributes["url"]
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                connection.commit()
    engine.dispose()


run_migrations_online()
