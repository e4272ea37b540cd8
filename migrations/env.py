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
    # A batch migration on SQLite copies a table and drops the original; with foreign keys enforced (as
    # db.make_engine sets them), dropping a table that rows of another table reference fails. So they are
    # off while migrating (SQLite ignores the pragma inside a transaction, hence the commit), the result is
    # checked with foreign_key_check, and they are back on before the connection returns to the pool.
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if violations:
                    raise RuntimeError(f"migration left rows with dangling foreign keys: {violations[:10]}")
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
