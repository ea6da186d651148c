"""PostgreSQL: NOTIFY fileorg_changes after every statement that writes users, root_grants,
refresh_tokens or operations, so each API process drops what it cached of them (api.changes)
milliseconds after another process's commit (issue 15). SQLite needs nothing: api.changes
reads its PRAGMA data_version.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("users", "root_grants", "refresh_tokens", "operations")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # A notice is sent at commit, once per transaction and payload (PostgreSQL folds repeats).
    op.execute(
        "CREATE FUNCTION fileorg_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pg_notify('fileorg_changes', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION fileorg_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS fileorg_changed()")
