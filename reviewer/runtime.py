"""What every stage needs, built once per process: the settings, the database, the API adapters
(created on first use, so a command that does not talk to GitHub does not need its token), this
instance's name for leases and events, and the clock.

The schema: every command brings an *empty* database to head (a newcomer's first command just works);
pending migrations of a database at an older revision are applied only by `run`, `cycle`, `demo` and
`db upgrade`, and any other command names `reviewer db upgrade` instead. Migrating happens under the
migration lock (`locks.serialized`), so instances started together on one database migrate it once and
the others wait for it, then start.

Start-up stays cheap (`reviewer status` and `costs` in well under a second): the SDKs are imported when
an adapter is first built, and Alembic only when the database is not at `HEAD_REVISION`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from reviewer.db import make_engine, session_factory, utcnow
from reviewer.errors import ConfigError
from reviewer.locks import serialized
from reviewer.logs import settle_library_loggers
from reviewer.migrate import (
    HEAD_REVISION,
    check_schema_current,
    current_revision,
    head_revision,
    recorded_revision,
    upgrade,
)
from reviewer.models import deployment_prefix

if TYPE_CHECKING:  # the SDKs behind them load only when a command uses an adapter
    from reviewer.batches import Batches
    from reviewer.config import Settings
    from reviewer.github import GitHub

log = logging.getLogger("reviewer")
MIGRATION_LOCK = "reviewer:migrate"


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runtime:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utcnow,
                 engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.actor = instance_name()
        self.clock = clock
        self._github: GitHub | None = None
        self._batches: Batches | None = None
        self._prefix: str | None = None

    @property
    def github(self) -> GitHub:
        if self._github is None:
            from reviewer.github import GitHub

            settle_library_loggers()  # PyGithub was perhaps imported just now, after logging was configured
            self._github = GitHub(self.settings)
        return self._github

    def repository_names(self, wanted: Iterable[str] | None = None) -> list[str]:
        """The configured names of the repositories among `wanted` (all of them when None), in config order;
        `wanted` is matched case-insensitively, and a name in it that is not configured is a ConfigError."""
        names = [r.name for r in self.settings.repositories]
        if wanted is None:
            return names
        keys = {name.casefold(): name for name in wanted}
        unknown = [name for key, name in keys.items() if key not in {n.casefold() for n in names}]
        if unknown:
            raise ConfigError("--repo", ", ".join(unknown), f"not in the repositories of {self.settings.source} "
                              f"(configured: {', '.join(names) or 'none'}); add it there or fix the name")
        return [n for n in names if n.casefold() in keys]

    @property
    def custom_id_prefix(self) -> str:
        """This deployment's custom_id prefix (read once: the deployment id never changes)."""
        if self._prefix is None:
            with self.sessions() as session:
                self._prefix = deployment_prefix(session)
        return self._prefix

    def github_if_built(self) -> GitHub | None:
        """The GitHub adapter if something already used it; never builds one (a metrics scrape must not)."""
        return self._github

    def require_batches(self) -> Batches:
        """The Anthropic adapter, built now: a missing API key fails here, before any job is claimed."""
        return self.batches

    @property
    def batches(self) -> Batches:
        if self._batches is None:
            from reviewer.batches import Batches

            settle_library_loggers()
            self._batches = Batches(self.settings)
        return self._batches

    def prepare_database(self, migrate: bool) -> None:
        """Create the schema of an empty database; apply pending migrations when `migrate` (run, cycle,
        demo), else refuse a database that is behind."""
        before, after = bring_to_head(self.engine, migrate)
        if before != after:
            log.info("database migrated from %s to %s", before or "empty", after)

    def close(self) -> None:
        for adapter in (self._github, self._batches):  # their HTTP connections, then the database's
            if adapter is not None:
                adapter.close()
        self.engine.dispose()


def bring_to_head(engine: Engine, migrate: bool) -> tuple[str | None, str]:
    """(revision before, revision after): an empty database gets the schema, one behind is upgraded if
    `migrate` or refused (SchemaOutOfDate). The lock is taken only when the schema is not at head, and the
    revision is read again under it: another instance may have migrated meanwhile. A database at
    `HEAD_REVISION` (the common case) is recognised with one query, without loading Alembic."""
    if recorded_revision(engine) == HEAD_REVISION:
        return HEAD_REVISION, HEAD_REVISION
    head = head_revision()
    if current_revision(engine) == head:
        return head, head
    with serialized(engine, MIGRATION_LOCK):
        current = current_revision(engine)
        if current != head and (migrate or _empty(engine)):
            return upgrade(engine)
    check_schema_current(engine)
    return head, head


def _empty(engine: Engine) -> bool:
    """No table at all (a fresh database), as opposed to one at an older revision or someone else's."""
    return set(inspect(engine).get_table_names()) <= {"alembic_version"}
