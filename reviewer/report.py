"""What a stage returns: `StageReport`, counts in a named vocabulary (`Count`) plus one line per notable
item and one per problem. Stages fill it and never print; the CLI prints it, the daemon logs it, and
tests and benchmarks read its counts by name.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

log = logging.getLogger("reviewer")


class Count(enum.StrEnum):
    """Everything a stage counts; the value is how the summary line shows it."""

    # collect
    PULLS_SEEN = "pull requests seen"
    UNCHANGED = "unchanged"
    QUEUED = "queued"
    SKIPPED = "skipped"
    STALE_CLOSED = "stale (closed)"
    STALE_SUPERSEDED = "stale (superseded)"
    # submit, estimate and the express lane
    SUBMITTED = "submitted"
    BATCHES = "batches"
    ADOPTED_BATCHES = "adopted batches"
    SKIPPED_BUDGET = "skipped (budget)"
    WAITING_FOR_BUDGET = "waiting for budget"
    WAITING_FOR_QUEUE_ROOM = "waiting for queue room"
    WOULD_SUBMIT = "would submit"
    ANSWERED = "answered"
    # poll
    BATCHES_IN_PROGRESS = "batches in progress"
    BATCHES_NOT_VISIBLE = "batches not visible yet"
    BATCHES_ENDED = "batches ended"
    RESULTS_SUCCEEDED = "results succeeded"
    RESULTS_ERRORED = "results errored"
    RESULTS_EXPIRED = "results expired"
    RESULTS_CANCELED = "results canceled"
    UNKNOWN_RESULTS = "unknown results ignored"
    FOREIGN_RESULTS = "foreign results ignored"
    WITHOUT_RESULT = "without result"
    # post
    POSTED = "posted"
    POSTED_WITHOUT_INLINE = "posted (inline comments refused)"
    ALREADY_POSTED = "already posted"
    STALE = "stale"
    DEFERRED = "deferred"
    REFUSED = "refused (tried again next run)"
    FAILED = "failed"
    INTERRUPTED_POSTS = "interrupted posts recovered"
    # batch operations
    BATCHES_CANCELED = "batches canceled"

    @classmethod
    def results(cls, result_type: str) -> Count:
        """The counter of stored result lines of one type (`succeeded`, `errored`, ...)."""
        return cls(f"results {result_type}")


@dataclass
class StageReport:
    """Counts plus one line per notable item; stages fill it, the CLI prints it, the daemon logs it."""

    stage: str
    counts: dict[Count, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, key: Count, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def note(self, line: str) -> None:
        self.notes.append(line)
        log.info("%s: %s", self.stage, line)

    def error(self, line: str) -> None:
        self.errors.append(line)
        log.warning("%s: %s", self.stage, line)

    def lines(self) -> str:
        """The summary and the notes, for a terminal or a log."""
        return "\n".join([self.summary(), *(f"  {line}" for line in self.notes)])

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "nothing to do"
        return f"{self.stage}: {counts}"
