"""Review quality: incremental re-review columns, repository rules and omitted files on jobs, and the
pull_skips table (why a pull request is not reviewed).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_diff", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("review_base_sha", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("previous_summary", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("repo_rules", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("config_source", sa.String(length=300), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("omitted", sa.Text(), nullable=True))
    op.create_table(
        "pull_skips",
        sa.Column("repository", sa.String(length=200), nullable=False),
        sa.Column("pr_number", sa.Integer(), nullable=False),
        sa.Column("head_sha", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("repository", "pr_number", name=op.f("pk_pull_skips")),
    )


def downgrade() -> None:
    op.drop_table("pull_skips")
    with op.batch_alter_table("review_jobs", schema=None) as batch_op:
        for column in ("omitted", "config_source", "repo_rules", "previous_summary", "review_base_sha",
                       "review_diff"):
            batch_op.drop_column(column)
