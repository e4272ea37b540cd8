"""Thin adapter over PyGithub: the calls the pipeline makes, and the translation of GitHub's failures
into `GitHubError`s with one clear line. No decisions are made here.

Traps it avoids (see shared/reference/github.md): PyGithub's default retry re-sends a POST up to ten
times on 5xx, so reads retry and writes never do (posting is made idempotent by a marker instead);
PyGithub has no call for the diff media type, so the diff is fetched through its requester; GitHub
refuses the diff above 300 files (406), so the per-file listing is the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.PullRequest import PullRequest

from reviewer.config import Settings, require_github_token
from reviewer.diffs import FilePatch, diff_from_file_patches
from reviewer.errors import AuthFailed, GitHubError, NotFound, RateLimited, Unreachable

DIFF_MEDIA_TYPE = "application/vnd.github.diff"
PAGE_SIZE = 100
MAX_RATE_LIMIT_WAIT_SECONDS = 120  # longer waits are deferred to a later run, never slept inside one job

T = TypeVar("T")


@dataclass(frozen=True)
class PullSummary:
    number: int
    title: str
    author: str
    author_type: str
    draft: bool
    state: str
    merged: bool
    head_sha: str
    head_ref: str
    base_sha: str
    base_ref: str
    body: str
    url: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class PostedReview:
    id: int
    user_login: str
    body: str
    commit_id: str
    html_url: str


@dataclass(frozen=True)
class RateLimit:
    remaining: int
    limit: int
    reset_at: int  # Unix time at which the window resets


class _OneClient(Github):
    """A lazy `Github` whose `withLazy(True)` is itself. PyGithub builds a new client, with a new
    requester, on every `withLazy` call; one shared requester keeps the rate-limit headers of every
    response (see `GitHub.rate_limit`), the request pacing and the connection in one place."""

    def withLazy(self, lazy: bool) -> Github:  # noqa: N802 (PyGithub's name)
        return self if lazy else super().withLazy(lazy)


def _summary(pr: PullRequest, merged: bool = False) -> PullSummary:
    # Only attributes present in list items are read: anything else makes PyGithub fetch the PR again.
    return PullSummary(
        number=pr.number,
        title=pr.title or "",
        author=pr.user.login if pr.user else "",
        author_type=(pr.user.type if pr.user else "") or "User",
        draft=bool(pr.draft),
        state=pr.state,
        merged=merged,
        head_sha=pr.head.sha,
        head_ref=pr.head.ref,
        base_sha=pr.base.sha,
        base_ref=pr.base.ref,
        body=pr.body or "",
        url=pr.html_url or "",
        labels=tuple(label.name for label in pr.labels),
    )


class GitHub:
    """The GitHub calls of the pipeline, built from Settings (base URL, token, pacing)."""

    def __init__(self, settings: Settings) -> None:
        token = require_github_token(settings)
        self.base_url = settings.github_api_url
        read_retry = GithubRetry(
            total=3, connect=1, backoff_factor=0.5, allowed_methods=frozenset({"GET", "HEAD"}),
            secondary_rate_wait=60, max_rate_limit_wait=MAX_RATE_LIMIT_WAIT_SECONDS,
        )
        self._gh = _OneClient(
            auth=Auth.Token(token),
            lazy=True,
            base_url=self.base_url,
            timeout=int(settings.github.timeout_seconds),
            per_page=PAGE_SIZE,
            retry=read_retry,
            seconds_between_requests=settings.github.request_pause_seconds or None,
            seconds_between_writes=settings.github.write_pause_seconds or None,
        )
        self._login: str | None = None

    def rate_limit(self) -> RateLimit | None:
        """The rate-limit window as of the last response seen, None before the first; never calls GitHub
        (PyGithub's `Github.rate_limiting` would fetch /rate_limit when it has seen nothing yet)."""
        remaining, limit = self._gh.requester.rate_limiting
        if limit < 0:
            return None
        return RateLimit(remaining, limit, self._gh.requester.rate_limiting_resettime)

    # --- calls ------------------------------------------------------------------------------------

    def own_login(self) -> str:
        if self._login is None:
            self._login = self._call("identify the token's user", lambda: self._gh.get_user().login)
        return self._login

    def list_open_pulls(self, repository: str) -> list[PullSummary]:
        def run() -> list[PullSummary]:
            repo = self._gh.withLazy(True).get_repo(repository)
            return [_summary(pr) for pr in repo.get_pulls(state="open", sort="created", direction="asc")]

        return self._call(f"list open pull requests of {repository}", run)

    def get_pull(self, repository: str, number: int) -> PullSummary:
        return self._call(
            f"read {repository}#{number}",
            lambda: self._full_summary(self._gh.withLazy(True).get_repo(repository).get_pull(number)),
        )

    @staticmethod
    def _full_summary(pr: PullRequest) -> PullSummary:
        return _summary(pr, merged=bool(pr.merged))

    def fetch_diff(self, repository: str, number: int) -> tuple[str, str]:
        """The PR's unified diff and where it came from: "diff", or "files" when GitHub refused the
        diff as too large and the per-file listing was used instead."""
        path = f"/repos/{repository}/pulls/{number}"
        status, _headers, text = self._call(
            f"fetch the diff of {repository}#{number}",
            lambda: self._gh.requester.requestJson("GET", path, headers={"Accept": DIFF_MEDIA_TYPE}),
        )
        if status == 200:
            return text or "", "diff"
        if status == 406:
            return diff_from_file_patches(self._file_patches(repository, number)), "files"
        raise self._translate(GithubException(status, text, None), f"fetch the diff of {repository}#{number}")

    def _file_patches(self, repository: str, number: int) -> Iterator[FilePatch]:
        def run() -> list[FilePatch]:
            pr = self._gh.withLazy(True).get_repo(repository).get_pull(number)
            return [FilePatch(f.filename, f.status, f.patch, f.previous_filename) for f in pr.get_files()]

        return iter(self._call(f"list the files of {repository}#{number}", run))

    def find_review_with_marker(self, repository: str, number: int, marker: str) -> PostedReview | None:
        """Our own review on the PR whose body carries `marker`; reviews by anyone else never count."""
        me = self.own_login()

        def run() -> PostedReview | None:
            pr = self._gh.withLazy(True).get_repo(repository).get_pull(number)
            for review in pr.get_reviews():
                if review.user and review.user.login == me and marker in (review.body or ""):
                    return PostedReview(review.id, me, review.body, review.commit_id, review.html_url)
            return None

        return self._call(f"list the reviews of {repository}#{number}", run)

    def post_review(self, repository: str, number: int, head_sha: str, body: str,
                    comments: list[dict[str, Any]] | None = None) -> PostedReview:
        """One COMMENT review pinned to `head_sha`, with inline comments, sent once (no automatic retry
        of the POST). GitHub creates the whole review or nothing: a 422 means nothing was posted."""
        def run() -> PostedReview:
            lazy = self._gh.withLazy(True)
            repo = lazy.get_repo(repository)
            pr = repo.get_pull(number)
            review = pr.create_review(commit=repo.get_commit(head_sha), body=body, event="COMMENT",
                                      comments=comments or [])  # type: ignore[arg-type]
            return PostedReview(review.id, review.user.login if review.user else "", review.body,
                                review.commit_id, review.html_url)

        return self._call(f"post a review on {repository}#{number}", run)

    def own_texts(self, repository: str, number: int) -> list[str]:
        """Bodies of the service's own reviews and inline comments on the PR (for fingerprints)."""
        me = self.own_login()

        def run() -> list[str]:
            pr = self._gh.withLazy(True).get_repo(repository).get_pull(number)
            texts = [r.body or "" for r in pr.get_reviews() if r.user and r.user.login == me]
            texts += [c.body or "" for c in pr.get_review_comments() if c.user and c.user.login == me]
            return texts

        return self._call(f"list the review comments of {repository}#{number}", run)

    def read_default_branch_file(self, repository: str, path: str) -> str | None:
        """A file's text on the repository's default branch, or None if there is no such file."""
        def run() -> str | None:
            try:
                content = self._gh.withLazy(True).get_repo(repository).get_contents(path)
            except GithubException as exc:
                if exc.status == 404:
                    return None
                raise
            if isinstance(content, list):
                return None  # a directory
            return content.decoded_content.decode("utf-8", errors="replace")

        return self._call(f"read {path} of {repository}", run)

    def compare_diff(self, repository: str, base: str, head: str) -> str | None:
        """The diff from `base` to `head`, or None when GitHub cannot compare them (force-push)."""
        path = f"/repos/{repository}/compare/{base}...{head}"
        status, _headers, text = self._call(
            f"compare {base[:7]}...{head[:7]} in {repository}",
            lambda: self._gh.requester.requestJson("GET", path, headers={"Accept": DIFF_MEDIA_TYPE}),
        )
        return text if status == 200 and text is not None else None

    # --- error translation --------------------------------------------------------------------------

    def _call(self, action: str, run: Callable[[], T]) -> T:
        try:
            return run()
        except GithubException as exc:
            raise self._translate(exc, action) from None
        except requests.exceptions.RetryError:
            raise Unreachable(f"could not {action}: GitHub kept answering with server errors",
                              "try again later") from None
        except requests.exceptions.ConnectionError:
            raise Unreachable(f"could not {action}: cannot reach GitHub at {self.base_url}",
                              "check GITHUB_API_URL and the network") from None
        except requests.exceptions.Timeout:
            raise Unreachable(f"could not {action}: GitHub did not answer in time", "try again later") from None

    def _translate(self, exc: GithubException, action: str) -> GitHubError:
        status = exc.status
        message = _message(exc.data)
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        if status == 401:
            return AuthFailed(f"GitHub rejected the token while trying to {action} (401 {message})",
                              "check GITHUB_TOKEN", status)
        if status in (403, 429) and ("rate limit" in message.lower() or "retry-after" in headers
                                     or headers.get("x-ratelimit-remaining") == "0"):
            wait = float(headers.get("retry-after") or 60)
            return RateLimited(f"GitHub rate limit while trying to {action}: {message}", wait, status)
        if status == 404:
            return NotFound(f"could not {action}: not found (404); check the repository name and that the "
                            "token can see it", status=status)
        return GitHubError(f"could not {action}: GitHub answered {status} {message}", status=status)


def _message(data: Any) -> str:
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("data") or "")
        errors = data.get("errors")
        if errors:
            text += ": " + "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
        return text
    return str(data or "")[:200]
