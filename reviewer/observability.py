"""What operators see of a running `reviewer`: its logs, its health and its metrics.

Logs: one handler on the root logger writing to the current stderr, as text or one JSON object per
line. A filter on that handler redacts secrets from every record (message, arguments, exception and
extra fields) before any formatter sees it: the values of the secrets this process knows (GITHUB_TOKEN,
ANTHROPIC_API_KEY, GitHub App keys and tokens, from the environment and the Settings) and anything
shaped like a credential (`ghp_…`, `github_pat_…`, `sk-ant-…`, `Bearer …`, Authorization headers,
passwords in URLs, PEM private keys). HTTP and SDK loggers stay at WARNING unless the level is debug.

Health and metrics: `reviewer run` serves `/healthz` (the database answers and the scheduler runs)
and `/metrics` (Prometheus text format 0.0.4) from a stdlib HTTP server on a daemon thread. Queue,
batch and cost figures are read from the database at scrape time, so they are true whichever instance
did the work; step timings and failures are this process's own, recorded by `timed_step`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from reviewer import __version__

if TYPE_CHECKING:
    from reviewer.config import Settings
    from reviewer.runtime import Runtime, StageReport

log = logging.getLogger("reviewer.observability")

# --- redaction ------------------------------------------------------------------------------------

REDACTED = "[redacted]"
SECRET_ENV_NAMES = ("GITHUB_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GITHUB_APP_PRIVATE_KEY",
                    "GITHUB_APP_INSTALLATION_TOKEN", "GITHUB_APP_CLIENT_SECRET", "GITHUB_WEBHOOK_SECRET")
SECRET_ENV_SUFFIX = re.compile(r"(_TOKEN|_API_KEY|_PRIVATE_KEY|_SECRET)$")
SECRET_SETTING_NAME = re.compile(r"token|api_key|private_key|secret")
MIN_SECRET_LENGTH = 8  # shorter values would redact ordinary words; the patterns still catch tokens
_TOKEN_CHARS = r"[A-Za-z0-9_\-.~+/]"
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S), REDACTED),
    (re.compile(r"(?i)\b((?:proxy-)?authorization|x-api-key)(['\"]?\s*[:=]\s*)(['\"])[^'\"\n]*\3"),
     rf"\1\2\3{REDACTED}\3"),  # a quoted header value, as in a logged dict of headers
    (re.compile(r"(?i)\b((?:proxy-)?authorization|x-api-key)(\s*[:=]\s*)((?:bearer|token|basic)\s+)?"
                r"(?![\['\"])[^\s,;}]+"), rf"\1\2\3{REDACTED}"),
    (re.compile(rf"(?i)\b(bearer\s+){_TOKEN_CHARS}+=*"), rf"\1{REDACTED}"),
    (re.compile(rf"(?i)\b(token\s+){_TOKEN_CHARS}{{20,}}=*"), rf"\1{REDACTED}"),
    (re.compile(r"(?<![A-Za-z0-9])(?:gh[pousr]|github_pat)_[A-Za-z0-9_]+"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_\-]+"), REDACTED),
    (re.compile(r"\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@"), rf"\1{REDACTED}@"),
)


class Redactor:
    """Replaces known secret values, then credential-shaped text, with `[redacted]`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def remember(self, value: str | None) -> None:
        if not value:
            return
        parts = [value.strip(), *(line.strip() for line in value.splitlines() if len(line.strip()) >= 16)]
        with self._lock:
            known = set(self._values) | {p for p in parts if len(p) >= MIN_SECRET_LENGTH}
            self._values = tuple(sorted(known, key=len, reverse=True))  # longest first: no partial leftovers

    def redact(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern, replacement in SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)


def remember_environment_secrets(env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if name in SECRET_ENV_NAMES or SECRET_ENV_SUFFIX.search(name):
            REDACTOR.remember(value)


def remember_settings_secrets(settings: Settings) -> None:
    """Every secret-looking string field of the Settings (tokens, keys), whatever its source."""
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if isinstance(value, str) and SECRET_SETTING_NAME.search(item.name):
            REDACTOR.remember(value)


# --- logging --------------------------------------------------------------------------------------

LIBRARY_LOGGERS = ("urllib3", "requests", "github", "httpx", "httpcore", "httpx2", "httpcore2", "anthropic",
                   "apscheduler")  # the HTTP ones log headers at debug; apscheduler logs every run at info
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    """Redacts a record in place, so every formatter and every later handler sees the clean text."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError, IndexError):  # a bad format string must not stop the log
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the record's extra fields, and exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = _extras(record)
        entry.update(
            ts=datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            level=record.levelname.lower(),
            logger=record.name,
            message=record.getMessage(),
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (as `logging.lastResort` does), so a test runner
    that swaps stderr per command still captures the command's logs."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def configure_logging(level: str, log_format: str, env: Mapping[str, str] | None = None) -> None:
    """Install (or replace) the root handler with redaction, at `level`, as `text` or `json`."""
    remember_environment_secrets(os.environ if env is None else env)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    library_level = logging.NOTSET if level.lower() == "debug" else logging.WARNING
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(library_level)
        for own in list(library.handlers):  # PyGithub adds a bare StreamHandler at import: no redaction
            library.removeHandler(own)
        library.propagate = True


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
    from reviewer.models import Result, ReviewJob
    from reviewer.queue import State
    from reviewer.reports import open_batches, state_counts

    with rt.sessions() as session:
        counts = state_counts(session)
        in_flight = len(open_batches(session))
        money = session.execute(select(ReviewJob.repository, func.sum(Result.cost_micro_usd),
                                       func.sum(Result.standard_cost_micro_usd))
                                .join(ReviewJob, Result.job_id == ReviewJob.id)
                                .where(Result.result_type == "succeeded")  # as the ledger: only these are billed
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
    github = getattr(rt, "_github", None)  # read, never build: a scrape must not create a client
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

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
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

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
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
