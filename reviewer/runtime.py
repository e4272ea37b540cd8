"""What every stage needs, built once per process: the settings, the database, the API adapters
(created on first use, so a command that does not talk to GitHub does not need its token), this
instance's name for leases and events, and the clock.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime
from collections.abc import Callable, Iterable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from reviewer.batches import Batches
from reviewer.config import Settings
from reviewer.db import make_engine, session_factory, utcnow
from reviewer.github import GitHub
from reviewer.migrate import check_schema_current, upgrade

log = logging.getLogger("reviewer")


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

    @property
    def github(self) -> GitHub:
        if self._github is None:
            self._github = GitHub(self.settings)
        return self._github

    def repository_names(self, wanted: Iterable[str] | None = None) -> list[str]:
        """The configured repositories among `wanted` (all of them when None), in config order."""
        names = [r.name for r in self.settings.repositories]
        return names if wanted is None else [n for n in names if n in set(wanted)]

    def github_if_built(self) -> GitHub | None:
        """The GitHub adapter if something already used it; never builds one (a metrics scrape must not)."""
        return self._github

    def require_batches(self) -> Batches:
        """The Anthropic adapter, built now: a missing API key fails here, before any job is claimed."""
        return self.batches

    @property
    def batches(self) -> Batches:
        if self._batches is None:
            self._batches = Batches(self.settings)
        return self._batches

    def prepare_database(self, migrate: bool) -> None:
        """Apply pending migrations (run, cycle, demo) or refuse a database that is behind."""
        if migrate:
            before, after = upgrade(self.engine)
            if before != after:
                log.info("database migrated from %s to %s", before or "empty", after)
        check_schema_current(self.engine)

    def close(self) -> None:
        self.engine.dispose()
