"""What operators read of a running `reviewer`: its logs, with every secret redacted.

One handler on the root logger writes to the current stderr, as text or one JSON object per line. A
filter on that handler redacts secrets from every record (message, arguments, exception and extra
fields) before any formatter sees it: the values of the secrets this process knows (GITHUB_TOKEN,
ANTHROPIC_API_KEY, GitHub App keys and tokens, from the environment and the Settings) and anything
shaped like a credential (`ghp_…`, `github_pat_…`, `sk-ant-…`, `Bearer …`, Authorization headers,
passwords in URLs, PEM private keys). HTTP and SDK loggers stay at WARNING unless the level is debug.

Private code never reaches the log unless the operator asks for it: at debug, PyGithub and the anthropic
SDK log whole request and response bodies (the diff, the prompt, the review), so those two (`BODY_LOGGERS`)
stay at INFO unless `log_prompts` (`--log-prompts`) is set as well. The service's own records carry
names, ids, counts and error lines, never a diff or a prompt.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reviewer.config import Settings

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
BODY_LOGGERS = ("github", "anthropic")  # their debug records carry whole bodies: diffs, prompts, reviews
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
            ts=datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
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


def configure_logging(level: str, log_format: str, env: Mapping[str, str] | None = None,
                      log_prompts: bool = False) -> None:
    """Install (or replace) the root handler with redaction, at `level`, as `text` or `json`; the SDKs'
    request and response bodies only with `log_prompts` (and level debug)."""
    remember_environment_secrets(os.environ if env is None else env)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    _LIBRARIES.update(level=logging.NOTSET if level.lower() == "debug" else logging.WARNING, log_prompts=log_prompts)
    settle_library_loggers()


_LIBRARIES: dict[str, Any] = {}  # what configure_logging chose for the libraries' loggers


def settle_library_loggers() -> None:
    """Apply configure_logging's choice to the libraries' loggers again: the SDKs are imported when first
    used, after it, and PyGithub's import sets its logger to INFO with a bare StreamHandler (no redaction)
    and the anthropic SDK's honours ANTHROPIC_LOG. Nothing to do before configure_logging."""
    if not _LIBRARIES:
        return
    library_level = _LIBRARIES["level"]
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        quiet = library_level == logging.NOTSET and name in BODY_LOGGERS and not _LIBRARIES["log_prompts"]
        library.setLevel(logging.INFO if quiet else library_level)
        for own in list(library.handlers):  # PyGithub adds a bare StreamHandler at import: no redaction
            library.removeHandler(own)
        library.propagate = True
