"""Budgets and the express lane: the worst-case cost each in-flight job reserves, express jobs, and one
lock row per budget scope that serialises submitters so spending cannot pass a budget by a race.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reserved_micro_usd", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("express", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "budget_locks",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("touched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_budget_locks")),
    )


def downgrade() -> None:
    op.drop_table("budget_locks")
    with op.batch_alter_table("review_jobs", schema=None) as batch_op:
        batch_op.drop_column("express")
        batch_op.drop_column("reserved_micro_usd")
