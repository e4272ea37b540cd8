"""Alembic environment: `reviewer` hands over its engine in `config.attributes["engine"]`, so the
migrations run on exactly the database the service uses (no alembic.ini, no second URL to keep in sync).
`render_as_batch` lets SQLite alter tables; the naming convention keeps constraint names stable.
"""

from __future__ import annotations

from alembic import context

from reviewer import models  # noqa: F401  (registers the tables on Base.metadata)
from reviewer.db import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
