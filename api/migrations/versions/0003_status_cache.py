"""operations: the cached record (state, stage, stage timings, summary, synced_at) and the
schedule a run came from (issue 15 #1)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Rows keep NULL in synced_at: the API fills them from the data folder after it starts
(api.keeper), so upgrading reads no operation record.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("state", sa.String(32), nullable=True))
        batch.add_column(sa.Column("stage", sa.String(32), nullable=True))
        batch.add_column(sa.Column("stages", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("summary", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("schedule_id", sa.String(64), nullable=True))
    op.create_index("ix_operations_flow_run", "operations", ["flow_run_id"])


def downgrade() -> None:
    op.drop_index("ix_operations_flow_run", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        for name in ("schedule_id", "synced_at", "summary", "stages", "stage", "state"):
            batch.drop_column(name)
