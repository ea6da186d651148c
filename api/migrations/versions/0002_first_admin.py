"""first_admin: the one claim to be the admin by signing up first (issue 12 #1)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "first_admin",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_first_admin_one_row"),
    )
    # A database that already has accounts had its first signup: nobody claims it any more.
    op.execute(
        sa.text(
            "INSERT INTO first_admin (id, user_id, created_at) "
            "SELECT 1, NULL, CURRENT_TIMESTAMP WHERE EXISTS (SELECT 1 FROM users)"
        )
    )


def downgrade() -> None:
    op.drop_table("first_admin")
