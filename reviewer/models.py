"""ORM tables. The schema is created and changed only by the Alembic migrations in `migrations/`;
a change here without a migration fails `reviewer db check` and the migration tests.

    ReviewJob   one review of one (repository, pull request, head commit); its `state` is owned by queue.py
    JobEvent    every state change of a job, with its reason: what the service did and why
    Batch       one Anthropic Message Batch, recorded before the API call and again after it
    Result      every result line of every batch (succeeded or not), with usage and cost
    PullSkip    why a pull request is currently not reviewed
    RepoState   per-repository bookkeeping (last scheduled submission, the latest problem with its own rules)
    Deployment  this database's random identity, carried in every custom_id
    HttpCacheEntry  ETag and trimmed answer of a GitHub list request, per URL (conditional requests)
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from reviewer.db import Base, UTCDateTime, utcnow


class ResultType(enum.StrEnum):
    """How one request of a batch (or an express call) ended, as the API reports it. Only succeeded
    requests are billed."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    EXPIRED = "expired"
    CANCELED = "canceled"


class ReviewJob(Base):
    __tablename__ = "review_jobs"
    __table_args__ = (
        UniqueConstraint("repository", "pr_number", "head_sha"),
        Index("ix_review_jobs_state_repository", "state", "repository"),
        Index("ix_review_jobs_state_id", "state", "id"),  # claims read each state in id order, a chunk at a time
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository: Mapped[str] = mapped_column(String(200))
    pr_number: Mapped[int] = mapped_column(Integer)
    head_sha: Mapped[str] = mapped_column(String(64))
    base_sha: Mapped[str | None] = mapped_column(String(64))
    base_ref: Mapped[str] = mapped_column(String(255), default="")
    head_ref: Mapped[str] = mapped_column(String(255), default="")
    title: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(255), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    labels: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    diff: Mapped[str] = mapped_column(Text, default="")
    diff_source: Mapped[str] = mapped_column(String(16), default="diff")  # "diff" or "files" (fallback)
    # incremental re-review: the diff since the last reviewed head, and that head's summary as context
    review_diff: Mapped[str | None] = mapped_column(Text)
    review_base_sha: Mapped[str | None] = mapped_column(String(64))
    previous_summary: Mapped[str | None] = mapped_column(Text)
    repo_rules: Mapped[str | None] = mapped_column(Text)  # JSON of .github/reviewer.yml as read at collection
    config_source: Mapped[str] = mapped_column(String(300), default="")
    omitted: Mapped[str | None] = mapped_column(Text)  # JSON [[path, reason], ...] of files the model did not see
    unlisted_files: Mapped[int] = mapped_column(Integer, default=0)  # changed files GitHub did not list (over 3,000)

    state: Mapped[str] = mapped_column(String(16))  # a queue.State, written only by queue.py
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    model: Mapped[str | None] = mapped_column(String(100))  # the model it was sent to (the repo's may change later)

    review_text: Mapped[str | None] = mapped_column(Text)
    reserved_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)  # worst case held while in flight
    express: Mapped[bool] = mapped_column(Boolean, default=False)  # labelled for the standard API at once
    post_attempts: Mapped[int] = mapped_column(Integer, default=0)  # >1 means an earlier POST may have landed
    github_review_id: Mapped[int | None] = mapped_column(BigInteger)
    posted_url: Mapped[str | None] = mapped_column(String(500))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    events: Mapped[list[JobEvent]] = relationship(back_populates="job", order_by="JobEvent.id")


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("review_jobs.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[ReviewJob] = relationship(back_populates="events")


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    anthropic_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # a queue.BatchState, written only by queue.set_batch_state (its lifecycle is drawn in queue.py)
    state: Mapped[str] = mapped_column(String(16), index=True)
    processing_status: Mapped[str | None] = mapped_column(String(16))
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # set by `reviewer batches cancel`: its canceled lines requeue their jobs without counting an attempt
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(100))
    # the custom_ids of this batch are "<prefix>-<job id>"; NULL: created before deployment ids ("job-<id>")
    custom_id_prefix: Mapped[str | None] = mapped_column(String(40))
    # found by reconciliation, not recorded from the create answer: its result ids are checked before use
    adopted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Result(Base):
    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("batch_id", "custom_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("review_jobs.id"), index=True)
    custom_id: Mapped[str] = mapped_column(String(64))
    result_type: Mapped[str] = mapped_column(String(16))  # a ResultType
    is_batch: Mapped[bool] = mapped_column(Boolean, default=True)
    model: Mapped[str | None] = mapped_column(String(100))
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str | None] = mapped_column(Text)
    content_json: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_creation_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_creation_5m_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_creation_1h_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    standard_cost_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_saved_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PullSkip(Base):
    """The latest reason a pull request is not reviewed (draft, bot, label...); gone once it gets a job."""

    __tablename__ = "pull_skips"

    repository: Mapped[str] = mapped_column(String(200), primary_key=True)
    pr_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    head_sha: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetLock(Base):
    """One row per budget scope ("global", "repo:<name>"): submitters lock it while they reserve."""

    __tablename__ = "budget_locks"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    touched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RepoState(Base):
    __tablename__ = "repo_states"

    repository: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the latest problem with the repository's own rules (.github/reviewer.yml), one short line; NULL: none
    rules_problem: Mapped[str | None] = mapped_column(Text)
    rules_problem_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def repo_state(session: Session, repository: str) -> RepoState:
    """The row of `repository`, created if missing; instances that create it at the same moment do not
    collide (INSERT ... ON CONFLICT DO NOTHING, then read)."""
    state = session.get(RepoState, repository)
    if state is None:
        dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(dialect_insert(RepoState).values(repository=repository).on_conflict_do_nothing())
        state = session.get_one(RepoState, repository)
    return state


class Deployment(Base):
    """This database's identity: one row, a random id made when the schema was created (migration 0006).
    Every batch request carries it in its custom_id, so another deployment's results are never taken for
    this one's."""

    __tablename__ = "deployment"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def deployment_prefix(session: Session) -> str:
    """This database's custom_id prefix: `rv` and its deployment id."""
    return "rv" + session.scalars(select(Deployment.id)).one()


class HttpCacheEntry(Base):
    """The validator and the (trimmed) answer of a GitHub GET, per URL, so that the next run sends
    If-None-Match and a 304 costs no quota (see httpcache.py)."""

    __tablename__ = "http_cache"

    url: Mapped[str] = mapped_column(String(2000), primary_key=True)
    etag: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
