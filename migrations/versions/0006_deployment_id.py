"""Every database gets a random deployment id, carried in every batch request's custom_id, so that results
from another deployment on the same Anthropic key are never taken for this one's. Batches created
before this revision keep their old-style ids (`job-<id>`): their `custom_id_prefix` stays NULL. A batch
found by reconciliation rather than recorded from its create answer is marked `adopted`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    deployment = op.create_table(
        "deployment",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment")),
    )
    op.bulk_insert(deployment, [{"id": secrets.token_hex(6), "created_at": datetime.now(UTC)}])
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("custom_id_prefix", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("adopted", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("adopted")
        batch.drop_column("custom_id_prefix")
    op.drop_table("deployment")
