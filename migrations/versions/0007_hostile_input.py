"""Hostile input: the files of a pull request that GitHub did not list (it lists at most 3,000), so that a
review says how many were not reviewed; and the latest problem with each repository's own rules
(`.github/reviewer.yml` refused, a title pattern refused), so that `reviewer status` shows it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unlisted_files", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("repo_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules_problem", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("rules_problem_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repo_states", schema=None) as batch_op:
        batch_op.drop_column("rules_problem_at")
        batch_op.drop_column("rules_problem")
    with op.batch_alter_table("review_jobs", schema=None) as batch_op:
        batch_op.drop_column("unlisted_files")
