"""What operators watch of a running `reviewer`: its health and its metrics.

`reviewer run` serves `/healthz` (the database answers and the scheduler runs) and `/metrics`
(Prometheus text format 0.0.4) from a stdlib HTTP server on a daemon thread. Queue, batch and cost
figures are read from the database at scrape time, so they are true whichever instance did the work;
step timings and failures are this process's own, recorded by `timed_step`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from reviewer import __version__
from reviewer.logs import redact

if TYPE_CHECKING:
    from reviewer.report import StageReport
from reviewer.runtime import Runtime

log = logging.getLogger("reviewer.metrics")

# --- step metrics ---------------------------------------------------------------------------------

@dataclass
class StepStats:
    runs: int = 0
    seconds: float = 0.0
    failures: int = 0
    problems: int = 0


class StepMetrics:
    """Duration, failures (the step raised) and problems (lines in its report's errors) per step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], StepStats] = {}

    def declare(self, *names: str) -> None:
        """Export these steps at zero before their first run, so a scrape never misses a series."""
        with self._lock:
            for name in names:
                step, _, repository = name.partition(" ")
                self._stats.setdefault((step, repository), StepStats())

    def record(self, name: str, seconds: float, report: StageReport | None) -> None:
        step, _, repository = name.partition(" ")  # "submit acme/api" is step submit of acme/api
        with self._lock:
            stats = self._stats.setdefault((step, repository), StepStats())
            stats.runs += 1
            stats.seconds += seconds
            stats.failures += report is None
            stats.problems += len(report.errors) if report is not None else 0

    def snapshot(self) -> dict[tuple[str, str], StepStats]:
        with self._lock:
            return {key: dataclasses.replace(stats) for key, stats in self._stats.items()}


STEPS = StepMetrics()


def timed_step(name: str, run: Callable[[], StageReport], steps: StepMetrics = STEPS) -> StageReport:
    """Run one scheduler step and record its duration, and whether it raised, in `steps`."""
    started = time.monotonic()
    report: StageReport | None = None
    try:
        report = run()
        return report
    finally:
        steps.record(name, time.monotonic() - started, report)


# --- exposition -----------------------------------------------------------------------------------

def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    """Integers exactly (micro-USD totals outgrow a float's %g), other values as Python reprs them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(labels: dict[str, str]) -> str:
    pairs = [f'{key}="{_escape(value)}"' for key, value in labels.items() if value]
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[str, dict[str, str], float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.lines += [f"{name}{suffix}{_labels(labels)} {_number(value)}" for suffix, labels, value in samples]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _database_families(out: _Exposition, rt: Runtime) -> None:
    from reviewer.models import Result, ResultType, ReviewJob
    from reviewer.queue import State
    from reviewer.reports import batches_in_flight, state_counts

    with rt.sessions() as session:
        counts = state_counts(session)
        in_flight = len(batches_in_flight(session))
        money = session.execute(select(ReviewJob.repository, func.sum(Result.cost_micro_usd),
                                       func.sum(Result.standard_cost_micro_usd))
                                .join(ReviewJob, Result.job_id == ReviewJob.id)
                                .where(Result.result_type == ResultType.SUCCEEDED)  # billed: as the ledger
                                .group_by(ReviewJob.repository)).all()
    repositories = sorted(set(counts) | {r.name for r in rt.settings.repositories})
    out.family("reviewer_jobs", "gauge", "Review jobs by state and repository.",
               (("", {"state": s.value, "repository": r}, counts.get(r, {}).get(s.value, 0))
                for r in repositories for s in State))
    out.family("reviewer_batches_in_flight", "gauge", "Message Batches created and not yet ended.",
               [("", {}, in_flight)])
    out.family("reviewer_spent_micro_usd_total", "counter", "What the results cost, in micro-USD.",
               (("", {"repository": r}, spent or 0) for r, spent, _ in money))
    out.family("reviewer_standard_micro_usd_total", "counter",
               "What the standard Messages API would have charged for the same results, in micro-USD.",
               (("", {"repository": r}, standard or 0) for r, _, standard in money))


def _rate_limit_families(out: _Exposition, rt: Runtime, now: float) -> None:
    github = rt.github_if_built()
    seen = github.rate_limit() if github is not None else None
    out.family("reviewer_github_rate_limit_remaining", "gauge",
               "Requests left in GitHub's window, from the last response seen.",
               [("", {}, seen.remaining)] if seen else [])
    out.family("reviewer_github_rate_limit_reset_seconds", "gauge",
               "Seconds until GitHub's rate-limit window resets, from the last response seen.",
               [("", {}, max(seen.reset_at - now, 0))] if seen else [])


def _step_families(out: _Exposition, steps: StepMetrics) -> None:
    stats = sorted(steps.snapshot().items())
    out.family("reviewer_step_duration_seconds", "summary", "Time spent in scheduler steps.",
               [s for (step, repo), st in stats for s in (
                   ("_sum", {"step": step, "repository": repo}, st.seconds),
                   ("_count", {"step": step, "repository": repo}, st.runs))])
    out.family("reviewer_step_failures_total", "counter", "Scheduler steps that raised (see the log).",
               (("", {"step": step, "repository": repo}, st.failures) for (step, repo), st in stats))
    out.family("reviewer_step_problems_total", "counter", "Problems reported by scheduler steps.",
               (("", {"step": step, "repository": repo}, st.problems) for (step, repo), st in stats))


def render_metrics(rt: Runtime, steps: StepMetrics = STEPS, now: Callable[[], float] = time.time) -> str:
    """The Prometheus text exposition (format 0.0.4) of everything above."""
    out = _Exposition()
    try:
        _database_families(out, rt)
        database_up = 1
    except SQLAlchemyError as exc:
        log.warning("metrics: the database did not answer: %s", str(exc).splitlines()[0])
        database_up = 0
    out.family("reviewer_database_up", "gauge", "1 when the database answered this scrape.",
               [("", {}, database_up)])
    _rate_limit_families(out, rt, now())
    _step_families(out, steps)
    return out.text()


def check_health(rt: Runtime, scheduler_state: Callable[[], str]) -> tuple[int, dict[str, Any]]:
    """200 when the database answers SELECT 1 and the scheduler is running, else 503 with the reasons."""
    body: dict[str, Any] = {"status": "ok", "database": "ok", "scheduler": scheduler_state(),
                            "version": __version__, "instance": rt.actor}
    reasons = []
    try:
        with rt.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        body["database"] = f"error: {redact(str(exc).splitlines()[0])}"
        reasons.append(f"database: {body['database']}")
    if body["scheduler"] != "running":
        reasons.append(f"scheduler is {body['scheduler']}")
    if not reasons:
        return 200, body
    body.update(status="unavailable", reason="; ".join(reasons))
    return 503, body


# --- HTTP server ----------------------------------------------------------------------------------

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            status, body = check_health(self.server.rt, self.server.scheduler_state)
            self._answer(status, "application/json", json.dumps(body))
        elif path == "/metrics":
            self._answer(200, PROMETHEUS_CONTENT_TYPE, render_metrics(self.server.rt))
        else:
            self._answer(404, "text/plain; charset=utf-8", "not found: try /healthz or /metrics\n")

    def _answer(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], rt: Runtime, scheduler_state: Callable[[], str]) -> None:
        super().__init__(address, _Handler)
        self.rt = rt
        self.scheduler_state = scheduler_state

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("metrics: error answering %s", client_address)  # through the log, so redacted


class MetricsServer:
    """/healthz and /metrics on a daemon thread; `close()` stops it."""

    def __init__(self, rt: Runtime, scheduler_state: Callable[[], str], host: str, port: int) -> None:
        self._httpd = _Server((host, port), rt, scheduler_state)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="reviewer-metrics", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve_metrics(rt: Runtime, scheduler_state: Callable[[], str]) -> MetricsServer | None:
    """Start the server configured under `metrics:`; a port that cannot be bound is logged as an error
    and the service goes on reviewing without it."""
    options = rt.settings.metrics
    if not options.enabled:
        return None
    try:
        server = MetricsServer(rt, scheduler_state, options.host, options.port)
    except OSError as exc:
        log.error("cannot serve /healthz and /metrics on %s:%d (%s); set metrics.port or metrics.enabled: "
                  "false", options.host, options.port, exc.strerror or exc)
        return None
    log.info("serving %s/healthz and %s/metrics", server.url, server.url,
             extra={"url": server.url, "port": server.port})
    return server
