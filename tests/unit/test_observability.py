"""Logs (JSON lines, secret redaction), step metrics and the progress line: pure parts, no database."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reviewer.config import settings_from_mapping
from reviewer.logs import (
    REDACTED,
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    redact,
    remember_environment_secrets,
    remember_settings_secrets,
)
from reviewer.metrics import StepMetrics, StepStats, _labels, _number, timed_step
from reviewer.pipeline import format_duration, progress_line
from reviewer.report import StageReport

TOKEN = "0f3c9a-plain-looking-github-token-value"  # no ghp_ prefix: only its known value can redact it
KEY = "an-anthropic-key-without-its-prefix-0123"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging changes the root logger and the library loggers; put them back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
                 for name in ("github", "urllib3", "anthropic", "httpx2")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (lib_level, lib_handlers) in libraries.items():
        logging.getLogger(name).setLevel(lib_level)
        logging.getLogger(name).handlers[:] = lib_handlers


def record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"boom with {TOKEN}")
        except RuntimeError:
            exc_info = sys.exc_info()
    item = logging.LogRecord("reviewer.test", logging.WARNING, __file__, 1, msg, args or None, exc_info)
    item.__dict__.update(extra)
    return item


@pytest.mark.parametrize("text, leaked", [
    ("Authorization: token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F"),
    ("{'Authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x'}", "eyJhbGci"),
    ("header x-api-key=sk-ant-api03-abcdef_0123", "sk-ant-api03"),
    ("fine-grained github_pat_11ABCDEFG0_abcdefXYZ in a message", "github_pat_11"),
    ("installation ghs_16C7e42F292c6912E7710c838347Ae178B4a", "ghs_16C7e42F"),
    ("retrying with Bearer abc.def-ghi", "abc.def-ghi"),
    ("sent token 0123456789abcdef0123456789abcdef01234567", "0123456789abcdef"),
    ("database postgresql://reviewer:hunter2hunter2@db:5432/reviewer", "hunter2"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA"),
])
def test_credential_patterns_are_redacted(text: str, leaked: str) -> None:
    clean = redact(text)
    assert leaked not in clean and REDACTED in clean


@pytest.mark.parametrize("text", [
    "the token was rejected; check GITHUB_TOKEN",
    "GET http://127.0.0.1:8080/users/@me 200",
    "reviewer.scheduler: collect: pull requests seen 3, queued 1",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_known_secret_values_are_redacted_from_message_args_exception_and_extras() -> None:
    remember_environment_secrets({"GITHUB_TOKEN": TOKEN, "ANTHROPIC_API_KEY": KEY, "HOME": "/root/nothing-secret"})
    item = record("calling with %s and %r", TOKEN, {"key": KEY}, exc=True, detail=f"extra {KEY}")
    assert RedactingFilter().filter(item)
    line = logging.Formatter("%(message)s %(detail)s").format(item)
    assert TOKEN not in line and KEY not in line and "boom with [redacted]" in line
    assert line.startswith("calling with [redacted] and {'key': '[redacted]'}")
    assert redact("/root/nothing-secret") == "/root/nothing-secret"


def test_settings_secrets_are_remembered() -> None:
    token, key = "settings-only-token-value-123", "settings-only-key-value-456"
    settings = settings_from_mapping({}, "reviewer.yml", {"GITHUB_TOKEN": token, "ANTHROPIC_API_KEY": key}, Path("."))
    remember_settings_secrets(settings)
    assert redact(f"{token} {key}") == f"{REDACTED} {REDACTED}"


def test_a_private_key_is_redacted_line_by_line_too() -> None:
    body = "MIIEpAIBAAKCAQEAsecretlinesecretline"
    remember_environment_secrets({"GITHUB_APP_PRIVATE_KEY": f"-----BEGIN KEY-----\n{body}\n-----END KEY-----"})
    assert redact(f"partial dump: {body}") == f"partial dump: {REDACTED}"


def test_json_lines_parse_with_extras_and_exception() -> None:
    remember_environment_secrets({"GITHUB_TOKEN": TOKEN})  # on its own, not through an earlier test
    item = record("stage %s done", "collect", exc=True, repository="acme/api", count=3)
    RedactingFilter().filter(item)
    entry = json.loads(JsonFormatter().format(item))
    assert entry["level"] == "warning" and entry["logger"] == "reviewer.test"
    assert entry["message"] == "stage collect done"
    assert entry["repository"] == "acme/api" and entry["count"] == 3
    assert entry["ts"].endswith("Z") and "RuntimeError: boom with [redacted]" in entry["exc"]


def test_configure_logging_json_goes_through_redaction(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", env={"GITHUB_TOKEN": TOKEN})
    logging.getLogger("reviewer.test").info("token is %s\nsecond line", TOKEN, extra={"port": 9464})
    logging.getLogger("urllib3.connectionpool").info("hidden below WARNING")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "token is [redacted]\nsecond line" and entry["port"] == 9464
    assert not logging.getLogger("github").handlers  # PyGithub's own unredacted handler is gone


def test_debug_level_lets_library_loggers_through(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "text", env={})
    logging.getLogger("urllib3.connectionpool").debug("Authorization: Bearer abcdefgh")
    err = capsys.readouterr().err
    assert "urllib3.connectionpool: Authorization: Bearer [redacted]" in err


def test_timed_step_records_duration_failures_and_problems() -> None:
    steps = StepMetrics()
    report = StageReport("collect")
    report.errors.append("acme/ghost: not found")
    assert timed_step("collect", lambda: report, steps) is report

    def broken() -> StageReport:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        timed_step("submit acme/api", broken, steps)
    stats = steps.snapshot()
    assert stats[("collect", "")].runs == 1 and stats[("collect", "")].problems == 1
    assert stats[("submit", "acme/api")].failures == 1 and stats[("submit", "acme/api")].seconds >= 0


def test_declared_steps_are_zero_before_their_first_run() -> None:
    steps = StepMetrics()
    steps.declare("post", "submit acme/api")
    assert steps.snapshot() == {("post", ""): StepStats(), ("submit", "acme/api"): StepStats()}
    timed_step("post", lambda: StageReport("post"), steps)
    steps.declare("post")  # declaring again never resets what was recorded
    assert steps.snapshot()[("post", "")].runs == 1


def test_exposition_helpers() -> None:
    assert _labels({"step": "submit", "repository": 'a"b\\c\nd', "empty": ""}) == \
        '{step="submit",repository="a\\"b\\\\c\\nd"}'
    assert _number(12_345_678_901) == "12345678901" and _number(0.25) == "0.25"


@pytest.mark.parametrize("seconds, text", [(0.25, "0.2s"), (12, "12s"), (245, "4m05s"), (7325, "2h02m")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("args, line", [
    ((3, 245, 1, 3, 40, 120), "poll 3, 4m05s elapsed: 1 of 3 batches ended, 2 in flight (40 requests); "
                              "next poll in 2m00s"),
    ((1, 12, 0, 1, 1, None), "poll 1, 12s elapsed: 0 of 1 batch ended, 1 in flight (1 request)"),
    ((5, 3700, 2, 2, 0, None), "poll 5, 1h01m elapsed: all 2 batches ended"),
])
def test_progress_line_is_one_plain_line(args: tuple[int, float, int, int, int, float | None], line: str) -> None:
    assert progress_line(*args) == line
