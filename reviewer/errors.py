"""Every error `reviewer` raises on purpose, each with a one-line message that says what is wrong and
what to do about it. `cli.main` catches `ReviewerError` once, prints `error: <message>` and exits 1;
anything else is a bug and keeps its traceback.

    ReviewerError
    ├── ConfigError            the config file or environment is invalid (names the key)
    ├── SchemaOutOfDate        the database is not at the migrations' head
    ├── TemplateError          a prompt template is missing or refers to an unknown variable
    ├── GitHubError            GitHub answered with an error or could not be reached
    │   ├── AuthFailed         401: token missing, wrong or expired
    │   ├── Unreachable        no connection, or server errors after the retries
    │   ├── NotFound           404: repository or pull request does not exist (or the token cannot see it)
    │   └── RateLimited        403/429 rate limit; carries the seconds to wait
    ├── AnthropicError         the Anthropic API answered with an error or could not be reached
    ├── DatabaseError          the database cannot be reached, opened, read or written (missing, read-only,
    │                          full, locked); translated from the driver's error at the edges (db.py, cli.py)
    ├── ConcurrentTransition   a job or batch was not in the state the caller expected (another worker won)
    └── InstanceConflict       a second instance was started on a database that supports only one

An API's error answer may be JSON, a JSON string, an HTML page or nothing at all: `body_detail` makes any
of them one short line, so every message stays one line whatever the server sent.
"""

from __future__ import annotations

import re

DETAIL_CHARS = 200
_HTML = re.compile(r"^\s*<(?:!doctype|html|head|body|\?xml)", re.I)
_HTML_TITLE = re.compile(r"<(title|h1)[^>]*>(.*?)</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def body_detail(text: str | None) -> str:
    """One line for the body of an error answer: its text with whitespace collapsed, at most 200
    characters; an HTML page by its title; an empty body as `(empty body)`."""
    if text is None or not text.strip():
        return "(empty body)"
    if _HTML.match(text):
        found = _HTML_TITLE.search(text)
        title = " ".join(_TAG.sub(" ", found.group(2)).split()) if found else ""
        return f"(an HTML page: {title[:DETAIL_CHARS]})" if title else "(an HTML page)"
    line = " ".join(text.split())
    return line if len(line) <= DETAIL_CHARS else line[:DETAIL_CHARS - 1] + "…"


class ReviewerError(Exception):
    """Base class: `message` is one line for a human; `hint` optionally says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(ReviewerError):
    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


class SchemaOutOfDate(ReviewerError):
    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"database schema is at revision {current or 'none'}, the code needs {head}",
            "run `reviewer db upgrade`",
        )


class TemplateError(ReviewerError):
    pass


class GitHubError(ReviewerError):
    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        self.status = status
        super().__init__(message, hint)


class AuthFailed(GitHubError):
    pass


class Unreachable(GitHubError):
    """Affects every repository alike, so a run stops instead of reporting it once per item."""


class NotFound(GitHubError):
    pass


class RateLimited(GitHubError):
    def __init__(self, message: str, retry_after: float, status: int | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, f"retry in {retry_after:.0f}s", status)


class AnthropicError(ReviewerError):
    def __init__(
        self, message: str, hint: str | None = None, status: int | None = None, retryable: bool = False
    ) -> None:
        self.status = status
        self.retryable = retryable
        super().__init__(message, hint)


class DatabaseError(ReviewerError):
    """The database refused or failed an operation for a reason outside the code (see `db.database_error`)."""


class ConcurrentTransition(ReviewerError):
    """A guarded state change found the row in another state: another worker moved it first."""

    def __init__(self, item_id: int, expected: str, kind: str = "job") -> None:
        self.item_id = item_id
        super().__init__(f"{kind} {item_id} is no longer {expected}: another worker changed it first")


class InstanceConflict(ReviewerError):
    pass
