"""What an operator sees, end to end: debug JSON logs of a whole cycle that never show a secret,
`reviewer run`'s /healthz and /metrics while it reviews, and the progress lines of `cycle`."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from reviewer.config import load_settings
from reviewer.db import make_engine, session_factory, transaction, utcnow
from reviewer.metrics import check_health, render_metrics, serve_metrics
from reviewer.models import repo_state
from reviewer.runtime import Runtime
from tests.conftest import ANTHROPIC_KEY, GITHUB_TOKEN, Service, write_service
from tests.e2e.helpers import REPO, diff_for, jobs, own_reviews

POSTED = f'reviewer_jobs{{state="posted",repository="{REPO}"}} 1'


def _service(tmp_path: Path, database_url: str, github: Any, anthropic_api: Any, **extra: Any) -> Service:
    github.add_repo(REPO)
    github.open_pull(REPO, title="Search", diff=diff_for(1))
    return write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}], **extra)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class _Lines:
    """Collects a pipe's lines on a thread, so the test can wait for one without blocking on read."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        with pipe:  # closed at end of file, else the process's pipe is left open
            for raw in pipe:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))

    def text(self) -> str:
        self._thread.join(timeout=30)
        return "\n".join(self.lines)


@pytest.mark.slow
def test_debug_json_cycle_never_shows_the_secrets(tmp_path: Path, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    service = _service(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", github, anthropic_api)
    # --log-prompts: the SDKs' debug records (whole requests, headers included) are the hardest to redact
    process = service.spawn("--log-format", "json", "--log-level", "debug", "--log-prompts", "cycle")
    stdout, stderr = (stream.decode() for stream in process.communicate(timeout=120))
    assert process.returncode == 0, stderr[-3000:]
    for secret in (GITHUB_TOKEN, ANTHROPIC_KEY):
        assert secret not in stdout and secret not in stderr
    entries = [json.loads(line) for line in stderr.splitlines()]  # every stderr line is one JSON object
    loggers = {entry["logger"].split(".")[0] for entry in entries}
    assert {"github", "anthropic", "urllib3"} <= loggers, loggers  # the debug output was really there
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert "'Authorization': '[redacted]'" in stderr
    assert [j.state for j in jobs(service.database_url)] == ["posted"]


def test_cycle_prints_one_progress_line_per_poll(tmp_path: Path, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    service = _service(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", github, anthropic_api)
    result = service.cli("cycle")
    assert result.exit_code == 0, result.output
    progress = [line for line in result.stdout.splitlines() if line.startswith("poll ")]
    assert progress and all(re.fullmatch(r"poll \d+, [\dhms.]+ elapsed: .*batch(es)? ended.*", p) for p in progress)
    assert progress[-1].endswith("all 1 batch ended")


@pytest.mark.slow
def test_run_serves_health_and_metrics_then_stops_on_sigterm(  # type: ignore[no-untyped-def]
        tmp_path: Path, database_url: str, github, anthropic_api) -> None:
    service = _service(tmp_path, database_url, github, anthropic_api, metrics={"port": 0},
                       intervals={"collect_seconds": 0.3, "poll_seconds": 0.2, "post_seconds": 0.2,
                                  "lease_seconds": 30})
    assert service.cli("db", "upgrade").exit_code == 0
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:  # a missed nightly slot: submitted at start
        repo_state(session, REPO).last_submitted_at = utcnow() - timedelta(days=2)
    engine.dispose()

    process = service.spawn("--log-level", "info", "--log-format", "json", "run")
    stderr, stdout = _Lines(process.stderr), _Lines(process.stdout)  # type: ignore[arg-type]
    try:
        started = json.loads(stderr.wait_for(r'^\{.*"message": "serving http.*/metrics"'))
        base = started["url"]
        assert started["port"] > 0 and base == f"http://127.0.0.1:{started['port']}"
        status, body = _get(f"{base}/healthz")
        assert status == 200, body
        assert json.loads(body)["database"] == "ok" and json.loads(body)["scheduler"] == "running"
        deadline = time.monotonic() + 60
        metrics = ""
        while POSTED not in metrics and time.monotonic() < deadline:
            time.sleep(0.1)
            status, metrics = _get(f"{base}/metrics")
            assert status == 200
        assert POSTED in metrics, metrics
        assert len(own_reviews(github, REPO, 1)) == 1
        assert "reviewer_batches_in_flight 0" in metrics
        assert re.search(rf'reviewer_spent_micro_usd_total{{repository="{REPO}"}} [1-9]', metrics)
        assert re.search(r"reviewer_github_rate_limit_remaining \d+", metrics)
        assert re.search(r"reviewer_github_rate_limit_reset_seconds \d", metrics)
        assert re.search(r'reviewer_step_duration_seconds_count{step="collect"} [1-9]', metrics)
        assert 'reviewer_step_failures_total{step="post"} 0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    log = stderr.text()
    stdout.text()
    assert process.returncode == 0, log
    assert "stopped cleanly" in log and GITHUB_TOKEN not in log and ANTHROPIC_KEY not in log


def test_metrics_and_health_read_the_database(tmp_path: Path, database_url: str, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    service = _service(tmp_path, database_url, github, anthropic_api)
    assert service.cli("cycle").exit_code == 0
    rt = Runtime(load_settings(str(service.config_path), service.env))
    try:
        text = render_metrics(rt)
        assert POSTED in text and f'reviewer_jobs{{state="queued",repository="{REPO}"}} 0' in text
        assert "# TYPE reviewer_jobs gauge" in text and "reviewer_database_up 1" in text
        assert check_health(rt, lambda: "running")[0] == 200
        status, body = check_health(rt, lambda: "stopping")
        assert status == 503 and body["reason"] == "scheduler is stopping" and body["database"] == "ok"
    finally:
        rt.close()


def test_an_unreachable_database_is_unhealthy(tmp_path: Path, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    service = _service(tmp_path, f"sqlite:///{tmp_path / 'missing' / 'r.db'}", github, anthropic_api)
    rt = Runtime(load_settings(str(service.config_path), service.env))
    try:
        status, body = check_health(rt, lambda: "running")
        assert status == 503 and body["status"] == "unavailable" and body["database"].startswith("error: ")
        assert "reviewer_database_up 0" in render_metrics(rt)
    finally:
        rt.close()


def test_a_busy_port_is_logged_and_the_service_goes_on(tmp_path: Path, github, anthropic_api,  # type: ignore[no-untyped-def]
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = _service(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", github, anthropic_api, metrics={"port": port})
        rt = Runtime(load_settings(str(service.config_path), service.env))
        try:
            with caplog.at_level(logging.ERROR, logger="reviewer.metrics"):
                assert serve_metrics(rt, lambda: "running") is None
        finally:
            rt.close()
    assert f"cannot serve /healthz and /metrics on 127.0.0.1:{port}" in caplog.text


def test_metrics_can_be_disabled(tmp_path: Path, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    service = _service(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", github, anthropic_api, metrics={"enabled": False})
    rt = Runtime(load_settings(str(service.config_path), service.env))
    try:
        assert serve_metrics(rt, lambda: "running") is None
    finally:
        rt.close()

