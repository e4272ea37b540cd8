"""Thin adapter over PyGithub: the calls the pipeline makes, and the translation of GitHub's failures
into `GitHubError`s with one clear line. No decisions are made here.

Traps it avoids: PyGithub's default retry re-sends a POST up to ten
times on 5xx, so reads retry and writes never do (posting is made idempotent by a marker instead);
PyGithub has no call for the diff media type, so the diff is fetched through its requester; GitHub
refuses the diff above 300 files (406), so the per-file listing is the fallback (it stops at 3,000 files:
the pull request's `changed_files` says how many it left out); PyGithub lists never
send If-None-Match, so the open pull requests are listed page by page through the requester with the
ETag of the previous answer, and a 304 (free of quota) reuses it; so is the repository's rules file. The
last listing of each repository is held with the time it was asked for, so that a caller that needs it at
most a few seconds old (`open_pulls_within`: the check before posting) asks GitHub again only when it is
older. Which client (token, or the GitHub App installation of the repository) makes each call, and how
long it may wait, is auth.py's business.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import github
import requests
from github import Github, GithubException, UnknownObjectException
from github.GithubException import RateLimitExceededExceedsMaxWait

from reviewer.config import Settings
from reviewer.errors import AuthFailed, GitHubError, NotFound, RateLimited, Unreachable, body_detail
from reviewer.github.auth import PAGE_SIZE, Clients
from reviewer.github.cache import CachedPage, MemoryPageCache, PageCache
from reviewer.review.diffs import FilePatch, diff_from_file_patches

DIFF_MEDIA_TYPE = "application/vnd.github.diff"
OPEN_PULLS_QUERY = {"state": "open", "sort": "created", "direction": "asc", "per_page": PAGE_SIZE}
DEFAULT_RATE_LIMIT_WAIT = 60.0  # when GitHub says "slow down" without saying for how long
NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # reviewer/
_PYGITHUB_DIR = os.path.dirname(os.path.abspath(github.__file__)) + os.sep

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
class PullDiff:
    text: str
    source: str  # "diff", or "files" when GitHub refused the diff (over 300 files) and it was rebuilt
    unlisted: int = 0  # changed files the listing left out (GitHub lists at most 3,000)


@dataclass(frozen=True)
class RepoFile:
    size: int  # bytes, as GitHub reports them
    text: str | None  # None when larger than the caller's limit: not read


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


def _trimmed(pr: dict[str, Any]) -> dict[str, Any]:
    """The fields `_summary` reads: what a cached page keeps of each pull request (~1% of its JSON)."""
    user, head, base = pr.get("user") or {}, pr["head"], pr["base"]
    return {
        "number": pr["number"], "title": pr.get("title"), "state": pr["state"], "draft": pr.get("draft"),
        "merged": pr.get("merged"), "body": pr.get("body"), "html_url": pr.get("html_url"),
        "user": {"login": user.get("login"), "type": user.get("type")},
        "head": {"sha": head["sha"], "ref": head["ref"]}, "base": {"sha": base["sha"], "ref": base["ref"]},
        "labels": [{"name": label["name"]} for label in pr.get("labels") or ()],
    }


def _summary(pr: dict[str, Any]) -> PullSummary:
    user = pr.get("user") or {}
    return PullSummary(
        number=int(pr["number"]),
        title=pr.get("title") or "",
        author=user.get("login") or "",
        author_type=user.get("type") or "User",
        draft=bool(pr.get("draft")),
        state=pr["state"],
        merged=bool(pr.get("merged")),  # only the single-PR answer has it; list items are open anyway
        head_sha=pr["head"]["sha"],
        head_ref=pr["head"]["ref"],
        base_sha=pr["base"]["sha"],
        base_ref=pr["base"]["ref"],
        body=pr.get("body") or "",
        url=pr.get("html_url") or "",
        labels=tuple(label["name"] for label in pr.get("labels") or ()),
    )


def _next_page(link_header: str | None) -> str | None:
    found = NEXT_LINK.search(link_header or "")
    return found.group(1) if found else None


def _cached_page(cached: CachedPage | None) -> tuple[str, list[dict[str, Any]], str | None] | None:
    """(etag, items, next page) of a cached page; None when there is none or it cannot be read (a row
    written by another version): the page is then asked for without If-None-Match."""
    if cached is None:
        return None
    try:
        page = json.loads(cached.body)
        return cached.etag, list(page["items"]), page["next"]
    except (ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class _Listing:
    asked_at: float  # time.monotonic() when its first page was asked for: GitHub's answer is no older
    pulls: dict[int, PullSummary]


def _cached_file(cached: CachedPage | None) -> tuple[str, dict[str, Any]] | None:
    """(etag, kept answer) of a cached file; None when there is none or it cannot be read."""
    if cached is None:
        return None
    try:
        kept = json.loads(cached.body)
    except ValueError:
        return None
    return (cached.etag, kept) if isinstance(kept, dict) and "content" in kept else None


def _json_or_text(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except ValueError:
        return {"message": text or ""}  # `_message` makes one line of it


class GitHub:
    """The GitHub calls of the pipeline, built from Settings (base URL, credentials, pacing)."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.github_api_url
        self._clients = Clients(settings)
        self._pages = MemoryPageCache()
        self._listings: dict[str, _Listing] = {}  # by lower-cased repository name
        self._login: str | None = None
        self.monotonic: Callable[[], float] = time.monotonic  # the clock of held listings (a seam for tests)

    def close(self) -> None:
        """Close the HTTP sessions of every client built so far."""
        self._clients.close()

    def rate_limit(self) -> RateLimit | None:
        """The rate-limit window as of the last response seen (of the installation used last, in App
        mode), None before the first; never calls GitHub (PyGithub's `Github.rate_limiting` would fetch
        /rate_limit when it has seen nothing yet)."""
        client = self._clients.last_used
        if client is None:
            return None
        remaining, limit = client.requester.rate_limiting
        if limit < 0:
            return None
        return RateLimit(remaining, limit, client.requester.rate_limiting_resettime)

    def _gh(self, repository: str) -> Github:
        try:
            return self._clients.for_repository(repository)
        except UnknownObjectException:
            raise NotFound(f"the GitHub App is not installed on {repository} (404)",
                           "install the App on the repository or its organisation", 404) from None

    # --- calls ------------------------------------------------------------------------------------

    def own_login(self) -> str:
        """The service's own login: the token's user, or `<app slug>[bot]` for a GitHub App."""
        if self._login is None:
            self._login = self._call("identify the service's GitHub user", self._clients.own_login)
        return self._login

    def list_open_pulls(self, repository: str, cache: PageCache | None = None) -> list[PullSummary]:
        """Open pull requests, oldest first. Each page is asked for with the ETag of its previous answer
        (kept in `cache`, else in this process); a 304 reuses that answer and costs no quota."""
        first = f"{self.base_url}/repos/{repository}/pulls?{urlencode(OPEN_PULLS_QUERY)}"
        asked_at = self.monotonic()

        def run() -> list[PullSummary]:
            gh = self._gh(repository)
            items: list[dict[str, Any]] = []
            url: str | None = first
            while url is not None:
                page, url = self._conditional_page(gh, url, cache or self._pages)
                items += page
            return [_summary(item) for item in items]

        pulls = self._call(f"list open pull requests of {repository}", run)
        self._listings[repository.lower()] = _Listing(asked_at, {pull.number: pull for pull in pulls})
        return pulls

    def open_pulls_within(self, repository: str, max_age: float,
                          cache: PageCache | None = None) -> dict[int, PullSummary]:
        """The open pull requests by number, as GitHub listed them at most `max_age` seconds ago: the
        listing held (whoever asked for it in this process) while it is young enough, else listed again
        with `list_open_pulls` (an unchanged page is a free 304)."""
        held = self._listings.get(repository.lower())
        if held is None or self.monotonic() - held.asked_at >= max_age:
            self.list_open_pulls(repository, cache)
            held = self._listings[repository.lower()]
        return held.pulls

    @staticmethod
    def _conditional_page(gh: Github, url: str, cache: PageCache) -> tuple[list[dict[str, Any]], str | None]:
        cached = _cached_page(cache.get(url))
        headers = {"If-None-Match": cached[0]} if cached is not None else None
        status, response_headers, text = gh.requester.requestJson("GET", url, headers=headers)
        if status == 304 and cached is not None:
            return cached[1], cached[2]
        if status != 200:
            raise GithubException(status, _json_or_text(text), response_headers)
        items = [_trimmed(pr) for pr in json.loads(text)]
        next_url = _next_page(response_headers.get("link"))
        if response_headers.get("etag"):
            cache.put(url, response_headers["etag"], json.dumps({"items": items, "next": next_url}))
        return items, next_url

    def get_pull(self, repository: str, number: int) -> PullSummary:
        path = f"/repos/{repository}/pulls/{number}"
        return self._call(f"read {repository}#{number}", lambda: _summary(_checked(self._gh(repository), "GET", path)))

    def fetch_diff(self, repository: str, number: int) -> PullDiff:
        """The PR's unified diff and where it came from: "diff", or "files" when GitHub refused the
        diff as too large and the per-file listing (at most 3,000 files) was used instead."""
        path = f"/repos/{repository}/pulls/{number}"
        status, headers, text = self._call(
            f"fetch the diff of {repository}#{number}",
            lambda: self._gh(repository).requester.requestJson("GET", path, headers={"Accept": DIFF_MEDIA_TYPE}),
        )
        if status == 200:
            return PullDiff(text or "", "diff")
        if status == 406:
            patches, changed = self._file_patches(repository, number)
            return PullDiff(diff_from_file_patches(patches), "files", max(changed - len(patches), 0))
        raise self._translate(GithubException(status, _json_or_text(text), headers),
                              f"fetch the diff of {repository}#{number}")

    def _file_patches(self, repository: str, number: int) -> tuple[list[FilePatch], int]:
        """The files GitHub lists (at most 3,000), and how many the pull request changes in all."""
        def run() -> tuple[list[FilePatch], int]:
            pr = self._gh(repository).get_repo(repository).get_pull(number)
            files = [FilePatch(f.filename, f.status, f.patch, f.previous_filename, f.changes) for f in pr.get_files()]
            return files, pr.changed_files

        return self._call(f"list the files of {repository}#{number}", run)

    def find_review_with_marker(self, repository: str, number: int, marker: str) -> PostedReview | None:
        """Our own review on the PR whose body carries `marker`; reviews by anyone else never count."""
        me = self.own_login()

        def run() -> PostedReview | None:
            pr = self._gh(repository).get_repo(repository).get_pull(number)
            for review in pr.get_reviews():
                if review.user and review.user.login == me and marker in (review.body or ""):
                    return PostedReview(review.id, me, review.body, review.commit_id, review.html_url)
            return None

        return self._call(f"list the reviews of {repository}#{number}", run)

    def post_review(self, repository: str, number: int, head_sha: str, body: str,
                    comments: list[dict[str, Any]] | None = None) -> PostedReview:
        """One COMMENT review pinned to `head_sha`, with inline comments, sent once (no automatic retry
        of the POST). GitHub creates the whole review or nothing: a 422 means nothing was posted."""
        payload = {"commit_id": head_sha, "body": body, "event": "COMMENT", "comments": comments or []}
        path = f"/repos/{repository}/pulls/{number}/reviews"

        def run() -> PostedReview:
            review = _checked(self._gh(repository), "POST", path, payload)
            return PostedReview(int(review["id"]), (review.get("user") or {}).get("login") or "",
                                review.get("body") or "", review.get("commit_id") or "", review.get("html_url") or "")

        return self._call(f"post a review on {repository}#{number}", run)

    def own_texts(self, repository: str, number: int) -> list[str]:
        """Bodies of the service's own reviews and inline comments on the PR (for fingerprints)."""
        me = self.own_login()

        def run() -> list[str]:
            pr = self._gh(repository).get_repo(repository).get_pull(number)
            texts = [r.body or "" for r in pr.get_reviews() if r.user and r.user.login == me]
            texts += [c.body or "" for c in pr.get_review_comments() if c.user and c.user.login == me]
            return texts

        return self._call(f"list the review comments of {repository}#{number}", run)

    def read_default_branch_file(self, repository: str, path: str, max_bytes: int,
                                 cache: PageCache | None = None) -> RepoFile | None:
        """A file on the repository's default branch (its text only when it has at most `max_bytes`),
        or None if there is no such file. Asked for with the ETag of its previous answer (kept in `cache`,
        else in this process): an unchanged file is a free 304."""
        url = f"{self.base_url}/repos/{repository}/contents/{quote(path)}"

        def run() -> RepoFile | None:
            content = self._conditional_file(self._gh(repository), url, cache or self._pages)
            if content is None or content.get("type", "file") != "file":
                return None  # no such file, or a directory (a list) or a symlink or submodule
            size = int(content.get("size") or 0)
            if size > max_bytes or content.get("encoding") != "base64":  # GitHub sends none above 1 MB
                return RepoFile(size, None)
            return RepoFile(size, base64.b64decode(content.get("content") or "").decode("utf-8", errors="replace"))

        return self._call(f"read {path} of {repository}", run)

    @staticmethod
    def _conditional_file(gh: Github, url: str, cache: PageCache) -> dict[str, Any] | None:
        """The contents answer of one file (its type, size, encoding and content), None when there is none;
        revalidated with the ETag of the answer kept in `cache` (a 304 reuses it)."""
        cached = _cached_file(cache.get(url))
        headers = {"If-None-Match": cached[0]} if cached is not None else None
        status, response_headers, text = gh.requester.requestJson("GET", url, headers=headers)
        if status == 304 and cached is not None:
            return cached[1]
        if status == 404:
            return None
        if status != 200:
            raise GithubException(status, _json_or_text(text), response_headers)
        data = json.loads(text)
        if not isinstance(data, dict):
            return None  # a directory: a list of its entries
        kept = {key: data.get(key) for key in ("type", "size", "encoding", "content")}
        if response_headers.get("etag"):
            cache.put(url, response_headers["etag"], json.dumps(kept))
        return kept

    def compare_diff(self, repository: str, base: str, head: str) -> str | None:
        """The diff from `base` to `head`, or None when GitHub cannot compare them (force-push)."""
        path = f"/repos/{repository}/compare/{base}...{head}"
        status, _headers, text = self._call(
            f"compare {base[:7]}...{head[:7]} in {repository}",
            lambda: self._gh(repository).requester.requestJson("GET", path, headers={"Accept": DIFF_MEDIA_TYPE}),
        )
        return text if status == 200 and text is not None else None

    # --- error translation --------------------------------------------------------------------------

    def _call(self, action: str, run: Callable[[], T]) -> T:
        try:
            return run()
        except GithubException as exc:
            raise self._translate(exc, action) from None
        except (AttributeError, TypeError, ValueError) as exc:
            if not _raised_in_pygithub(exc):
                raise  # our own bug: keep its traceback
            raise GitHubError(f"could not {action}: GitHub sent an answer PyGithub could not read "
                              f"({type(exc).__name__}: {body_detail(str(exc))})", "try again later") from None
        except requests.exceptions.RetryError as exc:
            if re.search(r"too many (403|429) error responses", str(exc)):
                raise _rate_limited(action, "GitHub kept answering that the rate limit is exceeded",
                                    DEFAULT_RATE_LIMIT_WAIT, None) from None
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
        if isinstance(exc, RateLimitExceededExceedsMaxWait) or _is_rate_limit(status, message, headers):
            wait = exc.wait if isinstance(exc, RateLimitExceededExceedsMaxWait) and exc.wait else None
            return _rate_limited(action, f"{status} {message}", wait or _wait_from(headers), status)
        if status == 401:
            who = "the token" if self._clients.app is None else "the GitHub App's credentials"
            return AuthFailed(f"GitHub rejected {who} while trying to {action} (401 {message})",
                              self._clients.credential_hint, status)
        if status == 404:
            return NotFound(f"could not {action}: not found (404); check the repository name and that the "
                            "token can see it", status=status)
        return GitHubError(f"could not {action}: GitHub answered {status} {message}", status=status)


def _checked(gh: Github, verb: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request through PyGithub's requester, its answer checked here: PyGithub's own check breaks on
    an error body that is a JSON string or truncated JSON (AttributeError, ValueError)."""
    status, headers, text = gh.requester.requestJson(verb, path, input=payload)
    data = _json_or_text(text)
    if status >= 400 or not isinstance(data, dict):
        raise GithubException(status, data, headers)
    return data


def _raised_in_pygithub(exc: BaseException) -> bool:
    """True when `exc` was raised inside PyGithub (the frames below the last of this package's are
    PyGithub's), i.e. PyGithub choked on an answer it did not expect; not when our own code raised it."""
    files: list[str] = []
    tb = exc.__traceback__
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    ours = [i for i, name in enumerate(files) if name.startswith(_OWN_DIR)]
    below = files[ours[-1] + 1:] if ours else files
    return bool(below) and below[0].startswith(_PYGITHUB_DIR)


def _is_rate_limit(status: int, message: str, headers: dict[str, str]) -> bool:
    if status == 429:
        return True
    return status == 403 and ("rate limit" in message.lower() or "retry-after" in headers
                              or headers.get("x-ratelimit-remaining") == "0")


def _wait_from(headers: dict[str, str], now: Callable[[], float] = time.time) -> float:
    """Seconds to wait: Retry-After if given, else until the primary window resets, else a minute."""
    try:
        if headers.get("retry-after"):
            return max(float(headers["retry-after"]), 0.0)
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            return max(float(headers["x-ratelimit-reset"]) - now() + 1, 1.0)
    except ValueError:
        pass  # an HTTP-date Retry-After or a malformed header: fall back to the default
    return DEFAULT_RATE_LIMIT_WAIT


def _rate_limited(action: str, detail: str, wait: float, status: int | None) -> RateLimited:
    at = datetime.fromtimestamp(time.time() + wait, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return RateLimited(f"GitHub rate limit while trying to {action} ({detail}); deferred, retry after {at} "
                       f"(in {wait:.0f}s)", wait, status)


def _message(data: Any) -> str:
    """One line from the body of an error answer, whatever its shape: GitHub's JSON (`message`, `errors`),
    a JSON string or number, the text PyGithub wraps as `{"data": ...}`, or the raw bytes its retry
    passes on when the body is not JSON (an HTML page, an empty body)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    if not isinstance(data, dict):
        return body_detail(data if isinstance(data, str) or data is None else json.dumps(data, default=str))
    text = str(data.get("message") or data.get("data") or "")
    errors = data.get("errors")
    if errors:
        items = errors if isinstance(errors, list) else [errors]
        text += ": " + "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in items)
    if not text and set(data) - {"message", "data", "errors", "documentation_url", "status"}:
        text = json.dumps(data, default=str)  # some other JSON object: show it rather than nothing
    return body_detail(text)
