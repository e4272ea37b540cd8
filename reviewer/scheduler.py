"""`reviewer run`: APScheduler 3.11 wiring only. Collection every few minutes, polling and posting
every few minutes, and each repository's submission on its own schedule (nightly, weekly or cron, in
the configured time zone). Jobs run one at a time on one worker thread, so steps never overlap.

A submission missed while the service was down is caught up once at start (the last recorded
submission is older than the schedule's latest fire time), never once per missed slot. SIGTERM and
SIGINT stop the service between steps: nothing new starts, and the running step gets a few seconds to
finish before the process exits anyway (shutdown.py: within Docker's 10 s; the next run picks it up).
A step that fails logs one line for an outside failure (GitHub, Anthropic, the database) and its
traceback only for a bug; the service goes on either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reviewer.collect import collect_pulls
from reviewer.config import RepoSettings
from reviewer.db import DATABASE_ERRORS, database_error
from reviewer.errors import ReviewerError
from reviewer.locks import single_instance
from reviewer.metrics import STEPS, serve_metrics, timed_step
from reviewer.models import RepoState
from reviewer.pipeline import collect_and_expedite
from reviewer.poll import poll_batches
from reviewer.post import post_answered
from reviewer.report import StageReport
from reviewer.runtime import Runtime
from reviewer.shutdown import Shutdown
from reviewer.submit import submit_queued

log = logging.getLogger("reviewer.scheduler")


def _step(name: str, run: Callable[[], StageReport], stop: threading.Event) -> Callable[[], None]:
    def job() -> None:
        if stop.is_set():
            return
        try:
            report = timed_step(name, run)  # duration and failure, for /metrics
            log.info("%s", report.summary())
        except ReviewerError as exc:  # an outside failure: one line, the next run tries again
            log.error("step %s failed: %s", name, exc)
        except DATABASE_ERRORS as exc:
            log.error("step %s failed: %s", name, database_error(exc))
        except Exception:  # the daemon must survive any one step; a bug's traceback is logged
            log.exception("step %s failed", name)

    return job


def _collect_and_expedite(rt: Runtime) -> StageReport:
    collected, express = collect_and_expedite(rt)
    if express.counts or express.errors:
        log.info("%s", express.summary())
    return collected


def _collect_and_submit(rt: Runtime, name: str) -> StageReport:
    """A scheduled submission collects its repository first, so the batch carries the latest heads."""
    collected = collect_pulls(rt, [name])
    log.info("%s", collected.summary())
    return submit_queued(rt, [name])


def missed_submission(repo: RepoSettings, last: datetime | None, now: datetime, timezone: str) -> bool:
    """True when a scheduled submission fell between `last` and `now` (so one catch-up is due)."""
    if last is None:
        return False
    trigger = CronTrigger.from_crontab(repo.schedule, timezone=ZoneInfo(timezone))
    upcoming = trigger.get_next_fire_time(None, last)
    return upcoming is not None and upcoming <= now


def build_scheduler(rt: Runtime, stop: threading.Event) -> BackgroundScheduler:
    tz = ZoneInfo(rt.settings.timezone)
    scheduler = BackgroundScheduler(
        timezone=tz,
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    intervals = rt.settings.intervals
    now = datetime.now(tz)
    STEPS.declare("collect", "poll", "post", *(f"submit {repo.name}" for repo in rt.settings.repositories))
    scheduler.add_job(_step("collect", lambda: _collect_and_expedite(rt), stop),
                      IntervalTrigger(seconds=intervals.collect_seconds), id="collect", next_run_time=now)
    scheduler.add_job(_step("poll", lambda: poll_batches(rt), stop),
                      IntervalTrigger(seconds=intervals.poll_seconds), id="poll", next_run_time=now)
    scheduler.add_job(_step("post", lambda: post_answered(rt), stop),
                      IntervalTrigger(seconds=intervals.post_seconds), id="post", next_run_time=now)
    with rt.sessions() as session:
        last = {s.repository: s.last_submitted_at for s in session.query(RepoState)}
    for repo in rt.settings.repositories:
        submit = _step(f"submit {repo.name}", lambda name=repo.name: _collect_and_submit(rt, name), stop)  # type: ignore[misc]
        catch_up = missed_submission(repo, last.get(repo.name), rt.clock(), rt.settings.timezone)
        scheduler.add_job(submit, CronTrigger.from_crontab(repo.schedule, timezone=tz), id=f"submit:{repo.name}")
        if catch_up:
            log.info("%s: a scheduled submission was missed while stopped; catching up once", repo.name)
            scheduler.add_job(submit, id=f"catch-up:{repo.name}", next_run_time=now)
    return scheduler


def run_service(rt: Runtime, stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT (main thread); a step that hangs past the grace is abandoned
    (shutdown.py) and picked up by the next run."""
    with Shutdown(stop) as shutdown, single_instance(rt.engine):  # SQLite: one instance per database file
        _serve(rt, shutdown.stop)


def _serve(rt: Runtime, stop: threading.Event) -> None:
    scheduler = build_scheduler(rt, stop)
    scheduler.start()
    metrics = serve_metrics(rt, lambda: "stopping" if stop.is_set() else
                            "running" if scheduler.running else "stopped")
    log.info("reviewer is running for %d repositories", len(rt.settings.repositories))
    stop.wait()
    scheduler.shutdown(wait=True)
    if metrics is not None:
        metrics.close()
    log.info("stopped cleanly")
