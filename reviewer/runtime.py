"""What every stage needs, built once per process: the settings, the database, the API adapters
(created on first use, so a command that does not talk to GitHub does not need its token), this
instance's name for leases and events, and the clock. Also `StageReport`, what each stage returns.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from reviewer.batches import Batches
from reviewer.config import Settings
from reviewer.db import make_engine, session_factory, utcnow
from reviewer.github import GitHub
from reviewer.migrate import check_schema_current, upgrade

log = logging.getLogger("reviewer")


@dataclass
class StageReport:
    """Counts plus one line per notable item; stages fill it, the CLI prints it, the daemon logs it."""

    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def note(self, line: str) -> None:
        self.notes.append(line)
        log.info("%s: %s", self.stage, line)

    def error(self, line: str) -> None:
        self.errors.append(line)
        log.warning("%s: %s", self.stage, line)

    def lines(self) -> str:
        """The summary and the notes, for a terminal."""
        return "\n".join([self.summary(), *(f"  {line}" for line in self.notes)])

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "nothing to do"
        return f"{self.stage}: {counts}"


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
