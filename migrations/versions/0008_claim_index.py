"""Scale: an index on review jobs by (state, id), the order in which every stage claims them, so reading
the next chunk of a 100,000-job queue is an index range scan instead of a sort of every queued row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_review_jobs_state_id", "review_jobs", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_review_jobs_state_id", table_name="review_jobs")
