"""Local emulator of the GitHub REST API subset that `reviewer` uses, served over real HTTP so that the
unmodified PyGithub client talks to it through `Github(base_url=emulator.url)`.

Invariants:
- Every absolute URL in a response (JSON `*_url` fields, `Link` headers) is built from `self.url`, including its
  port and path prefix, because PyGithub asserts that followed URLs match its `base_url`. HTML URLs point at
  github.com, as on the real service; PyGithub never follows them.
- File names in JSON (`filename`, `previous_filename`, a review comment's `path`) are real paths; a diff
  names them as git does (C-quoted where git quotes, see samples.py). `pulls/N/files` lists at most 3,000
  files, as GitHub does, while the pull request's `changed_files` counts them all.
- A pull request keeps every diff it was ever pushed with, keyed by head sha, so reviews may target older
  commits and `compare` can diff two pushes of the same PR.
- Review validation mirrors GitHub's 422s (see shared/reference/github.md §2.1): a review is stored entirely or
  not at all, and the error does not say which comment failed.
- All state sits behind one lock; the HTTP server calls `_handle` from many threads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from unidiff.patch import Hunk, Line, PatchedFile, PatchSet

from reviewer.emulators._server import EmulatorServer, Request, Response
from reviewer.emulators.github_apps import (
    APP_DOCS_URL,
    NOT_INTEGRATION,
    App,
    AppRegistry,
    Installation,
    app_json,
    installation_json,
    looks_like_jwt,
    token_json,
)
from reviewer.emulators.samples import git_unquote, make_diff

HTML_BASE = "https://github.com"
DOCS_URL = "https://docs.github.com/rest"
REVIEW_DOCS_URL = "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request"
FILES_DOCS_URL = "https://docs.github.com/rest/pulls/pulls#list-pull-requests-files"
RATE_LIMIT = 5000
ANONYMOUS_RATE_LIMIT = 60
RATE_WINDOW_SECONDS = 3600
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
MAX_DIFF_FILES = 300  # GitHub refuses the diff media type above this (406 too_large)
MAX_LISTED_FILES = 3000  # pulls/{n}/files stops here
MAX_BODY_CHARS = 65536
MAX_INLINE_CONTENT_BYTES = 1024 * 1024  # `GET contents` sends a larger file's size, not its content
DIFF_MEDIA_TYPES = ("application/vnd.github.diff", "application/vnd.github.v3.diff")
REVIEW_STATES = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
SAME_HUNK = "Pull request review thread start line must be part of the same hunk as the line."
TOO_LARGE_MESSAGE = (
    "Sorry, the diff exceeded the maximum number of files (300). Consider using 'List pull requests files' "
    "API or locally cloning the repository instead."
)


# --- the diff model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hunk:
    left: frozenset[int]  # old-side numbers of removed and context lines
    right: frozenset[int]  # new-side numbers of added and context lines


@dataclass(frozen=True)
class FileDiff:
    """One file of a unified diff, as GitHub's diff-entry sees it."""

    filename: str
    previous_filename: str | None
    status: str  # added | removed | modified | renamed
    additions: int
    deletions: int
    text: str  # this file's part of the diff, byte for byte
    patch: str | None  # from the first "@@" on; None for binary files and pure renames
    hunks: tuple[_Hunk, ...]
    positions: tuple[tuple[str, int] | None, ...]  # index = the deprecated `position`; 0 is the first "@@"
    parsed: PatchedFile = field(compare=False, repr=False)

    def hunk_index(self, side: str, line: int) -> int | None:
        for index, hunk in enumerate(self.hunks):
            if line in (hunk.left if side == "LEFT" else hunk.right):
                return index
        return None


def parse_diff(diff: str) -> tuple[FileDiff, ...]:
    files: list[FileDiff] = []
    for chunk in _split_files(diff):
        patch_set = PatchSet(chunk)
        for patched in patch_set:
            # keep GitHub's own text when a chunk is one git file; plain diffs fall back to unidiff's rendering
            files.append(_file_diff(patched, chunk if len(patch_set) == 1 else str(patched)))
    return tuple(files)


def _split_files(diff: str) -> list[str]:
    chunks: list[list[str]] = [[]]
    for line in diff.splitlines(keepends=True):
        if line.startswith("diff --git ") and chunks[-1]:
            chunks.append([])
        chunks[-1].append(line)
    return ["".join(chunk) for chunk in chunks if chunk]


def _file_diff(patched: PatchedFile, text: str) -> FileDiff:
    status = _file_status(patched)
    first_hunk = re.search(r"^@@", text, re.MULTILINE)
    patch = text[first_hunk.start() :].rstrip("\n") if first_hunk and not patched.is_binary_file else None
    return FileDiff(
        filename=git_unquote(patched.path),  # GitHub's JSON has the real path, git's diff a quoted one
        previous_filename=_strip_side(patched.source_file) if status == "renamed" else None,
        status=status,
        additions=patched.added,
        deletions=patched.removed,
        text=text,
        patch=patch,
        hunks=tuple(_hunk(h) for h in patched),
        positions=_positions(patched),
        parsed=patched,
    )


def _file_status(patched: PatchedFile) -> str:
    # from the headers, not unidiff's is_added_file: that also calls an edit of an empty file "added"
    header = "".join(patched.patch_info or ())
    if patched.source_file == "/dev/null" or "\nnew file mode" in header:
        return "added"
    if patched.target_file == "/dev/null" or "\ndeleted file mode" in header:
        return "removed"
    if patched.is_rename or _strip_side(patched.source_file) != _strip_side(patched.target_file):
        return "renamed"
    return "modified"


def _strip_side(name: str) -> str:
    path = git_unquote(name)
    return path[2:] if path.startswith(("a/", "b/")) else path


def _hunk(hunk: Hunk) -> _Hunk:
    old_side = (line.source_line_no for line in hunk if line.is_context or line.is_removed)
    new_side = (line.target_line_no for line in hunk if line.is_context or line.is_added)
    return _Hunk(frozenset(n for n in old_side if n is not None), frozenset(n for n in new_side if n is not None))


def _positions(patched: PatchedFile) -> tuple[tuple[str, int] | None, ...]:
    positions: list[tuple[str, int] | None] = []
    for hunk in patched:
        positions.append(None)  # every "@@" header takes a position; the first one is position 0
        positions.extend(_line_anchor(line) for line in hunk)
    return tuple(positions)


def _line_anchor(line: Line) -> tuple[str, int] | None:
    if line.is_removed and line.source_line_no is not None:
        return "LEFT", line.source_line_no
    if (line.is_added or line.is_context) and line.target_line_no is not None:
        return "RIGHT", line.target_line_no
    return None  # "\ No newline at end of file"


def apply_patch(old: str, patched: PatchedFile) -> str:
    """The new content of a file, given its old content and its hunks (context is trusted, not checked)."""
    source = old.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    for hunk in patched:
        # a hunk with no old lines ("-5,0") inserts after line 5; otherwise it starts at line source_start
        start = hunk.source_start if hunk.source_length == 0 else hunk.source_start - 1
        out.extend(source[cursor:start])
        cursor = start
        previous = ""
        for line in hunk:
            if line.line_type == "\\":
                if previous in (" ", "+") and out:
                    out[-1] = out[-1].rstrip("\n")
            elif line.is_removed:
                cursor += 1
            else:
                out.append(line.value)
                cursor += 1 if line.is_context else 0
            previous = line.line_type
    out.extend(source[cursor:])
    return "".join(out)


# --- state ----------------------------------------------------------------------------------------


@dataclass
class _User:
    login: str
    id: int
    type: str  # User | Bot | Organization


@dataclass(frozen=True)
class _Snapshot:
    sha: str
    diff: str
    files: tuple[FileDiff, ...]

    def file(self, path: str) -> FileDiff | None:
        return next((f for f in self.files if f.filename == path), None)

    def renamed_away(self, path: str) -> bool:
        return any(f.previous_filename == path for f in self.files)


@dataclass
class _Pull:
    number: int
    id: int
    title: str
    body: str
    author: _User
    draft: bool
    labels: list[str]
    head_ref: str
    base_ref: str
    base_sha: str
    created_at: str
    updated_at: str
    updated_seq: int
    shas: list[str] = field(default_factory=list)  # oldest first; the last one is the head
    snapshots: dict[str, _Snapshot] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    state: str = "open"
    merged: bool = False
    closed_at: str | None = None
    merged_at: str | None = None

    @property
    def head(self) -> _Snapshot:
        return self.snapshots[self.shas[-1]]


@dataclass
class _Repo:
    full_name: str
    id: int
    owner: _User
    default_branch: str
    created_at: str
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> path -> content
    pulls: dict[int, _Pull] = field(default_factory=dict)


@dataclass
class _Quota:
    limit: int
    reset: int
    used: int = 0

    def roll(self, now: float) -> None:
        if now >= self.reset:
            self.used, self.reset = 0, int(now) + RATE_WINDOW_SECONDS


@dataclass(frozen=True)
class _Call:
    request: Request
    user: _User
    quota: _Quota
    repo: _Repo | None
    pull: _Pull | None
    params: dict[str, str]  # first value of each query parameter
    path: str  # without the public URL's path prefix


class _Absent:
    """Content lookup result: the file does not exist at that ref (as opposed to None: not known)."""


ABSENT = _Absent()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(*parts: object) -> str:
    return hashlib.sha1("\x00".join(str(p) for p in parts).encode()).hexdigest()


def _blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


def _node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode()


def _error(status: int, message: str, docs: str = DOCS_URL, **extra: Any) -> Response:
    return Response.json(status, {"message": message, **extra, "documentation_url": docs, "status": str(status)})


def _to_sentence(items: Sequence[str]) -> str:
    """Rails' Array#to_sentence, which GitHub uses to join review errors: "A, B, and C"."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _int_param(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


# --- response shapes (every field the OpenAPI description marks as required) -----------------------


def _user_json(api: str, user: _User) -> dict[str, Any]:
    url = f"{api}/users/{quote(user.login)}"
    html = (
        f"{HTML_BASE}/apps/{user.login.removesuffix('[bot]')}"
        if user.type == "Bot"
        else f"{HTML_BASE}/{user.login}"
    )
    return {
        "login": user.login,
        "id": user.id,
        "node_id": _node_id(user.type, user.id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
        "gravatar_id": "",
        "url": url,
        "html_url": html,
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": user.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def _private_user_json(api: str, user: _User) -> dict[str, Any]:
    counts = dict.fromkeys(
        (
            "public_repos",
            "public_gists",
            "followers",
            "following",
            "private_gists",
            "total_private_repos",
            "owned_private_repos",
            "disk_usage",
            "collaborators",
        ),
        0,
    )
    profile = dict.fromkeys(("name", "company", "location", "email", "hireable", "bio", "twitter_username"))
    stamps = {"created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z"}
    return {**_user_json(api, user), **profile, **counts, **stamps, "blog": "", "two_factor_authentication": True}


def _repo_json(api: str, repo: _Repo) -> dict[str, Any]:
    full = repo.full_name
    url = f"{api}/repos/{full}"
    templated = {  # name -> suffix; GitHub returns RFC 6570 templates here
        "archive_url": "/{archive_format}{/ref}",
        "assignees_url": "/assignees{/user}",
        "blobs_url": "/git/blobs{/sha}",
        "branches_url": "/branches{/branch}",
        "collaborators_url": "/collaborators{/collaborator}",
        "comments_url": "/comments{/number}",
        "commits_url": "/commits{/sha}",
        "compare_url": "/compare/{base}...{head}",
        "contents_url": "/contents/{+path}",
        "contributors_url": "/contributors",
        "deployments_url": "/deployments",
        "downloads_url": "/downloads",
        "events_url": "/events",
        "forks_url": "/forks",
        "git_commits_url": "/git/commits{/sha}",
        "git_refs_url": "/git/refs{/sha}",
        "git_tags_url": "/git/tags{/sha}",
        "hooks_url": "/hooks",
        "issue_comment_url": "/issues/comments{/number}",
        "issue_events_url": "/issues/events{/number}",
        "issues_url": "/issues{/number}",
        "keys_url": "/keys{/key_id}",
        "labels_url": "/labels{/name}",
        "languages_url": "/languages",
        "merges_url": "/merges",
        "milestones_url": "/milestones{/number}",
        "notifications_url": "/notifications{?since,all,participating}",
        "pulls_url": "/pulls{/number}",
        "releases_url": "/releases{/id}",
        "stargazers_url": "/stargazers",
        "statuses_url": "/statuses/{sha}",
        "subscribers_url": "/subscribers",
        "subscription_url": "/subscription",
        "tags_url": "/tags",
        "teams_url": "/teams",
        "trees_url": "/git/trees{/sha}",
    }
    open_count = sum(1 for p in repo.pulls.values() if p.state == "open")
    counts = dict.fromkeys(
        (
            "forks",
            "forks_count",
            "stargazers_count",
            "watchers",
            "watchers_count",
            "size",
            "network_count",
            "subscribers_count",
        ),
        0,
    )
    flags = dict.fromkeys(
        ("private", "fork", "has_pages", "has_discussions", "archived", "disabled", "is_template"), False
    ) | dict.fromkeys(("has_issues", "has_projects", "has_wiki", "has_downloads"), True)
    return {
        "id": repo.id,
        "node_id": _node_id("Repository", repo.id),
        "name": full.split("/", 1)[1],
        "full_name": full,
        "owner": _user_json(api, repo.owner),
        "html_url": f"{HTML_BASE}/{full}",
        "description": None,
        "url": url,
        **{name: url + suffix for name, suffix in templated.items()},
        "git_url": f"git://github.com/{full}.git",
        "ssh_url": f"git@github.com:{full}.git",
        "clone_url": f"{HTML_BASE}/{full}.git",
        "svn_url": f"{HTML_BASE}/{full}",
        "mirror_url": None,
        "homepage": None,
        "language": "Python",
        "license": None,
        "visibility": "public",
        "default_branch": repo.default_branch,
        "open_issues": open_count,
        "open_issues_count": open_count,
        "topics": [],
        **counts,
        **flags,
        "pushed_at": repo.created_at,
        "created_at": repo.created_at,
        "updated_at": repo.created_at,
    }


def _label_json(api: str, repo: _Repo, name: str) -> dict[str, Any]:
    digest = hashlib.sha1(name.encode()).hexdigest()
    return {
        "id": int(digest[:8], 16),
        "node_id": _node_id("Label", int(digest[:8], 16)),
        "url": f"{api}/repos/{repo.full_name}/labels/{quote(name)}",
        "name": name,
        "description": "",  # nullable on GitHub, but pull-request-simple's schema says string
        "color": digest[-6:],
        "default": False,
    }


def _branch_json(api: str, repo: _Repo, ref: str, sha: str) -> dict[str, Any]:
    owner = repo.owner
    return {
        "label": f"{owner.login}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": _user_json(api, owner),
        "repo": _repo_json(api, repo),
    }


def _pull_simple_json(api: str, repo: _Repo, pull: _Pull) -> dict[str, Any]:
    url = f"{api}/repos/{repo.full_name}/pulls/{pull.number}"
    issue = f"{api}/repos/{repo.full_name}/issues/{pull.number}"
    html = f"{HTML_BASE}/{repo.full_name}/pull/{pull.number}"
    statuses = f"{api}/repos/{repo.full_name}/statuses/{pull.shas[-1]}"
    links = {
        "self": url,
        "html": html,
        "issue": issue,
        "comments": f"{issue}/comments",
        "review_comments": f"{url}/comments",
        "review_comment": f"{api}/repos/{repo.full_name}/pulls/comments{{/number}}",
        "commits": f"{url}/commits",
        "statuses": statuses,
    }
    return {
        "url": url,
        "id": pull.id,
        "node_id": _node_id("PullRequest", pull.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue,
        "commits_url": links["commits"],
        "review_comments_url": links["review_comments"],
        "review_comment_url": links["review_comment"],
        "comments_url": links["comments"],
        "statuses_url": statuses,
        "number": pull.number,
        "state": pull.state,
        "locked": False,
        "title": pull.title,
        "user": _user_json(api, pull.author),
        "body": pull.body or None,
        "labels": [_label_json(api, repo, name) for name in pull.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": pull.merged_at,
        "merge_commit_sha": _sha(repo.full_name, pull.number, "merge", pull.shas[-1]),
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _branch_json(api, repo, pull.head_ref, pull.shas[-1]),
        "base": _branch_json(api, repo, pull.base_ref, pull.base_sha),
        "_links": {name: {"href": href} for name, href in links.items()},
        "author_association": "NONE" if pull.author.type == "Bot" else "CONTRIBUTOR",
        "auto_merge": None,
        "draft": pull.draft,
    }


def _pull_json(api: str, repo: _Repo, pull: _Pull, merged_by: _User | None) -> dict[str, Any]:
    files = pull.head.files
    mergeable_state = "unknown" if pull.state != "open" else "draft" if pull.draft else "clean"
    return {
        **_pull_simple_json(api, repo, pull),
        "merged": pull.merged,
        "mergeable": True if pull.state == "open" else None,
        "rebaseable": True if pull.state == "open" else None,
        "mergeable_state": mergeable_state,
        "merged_by": _user_json(api, merged_by) if merged_by else None,
        "comments": 0,
        "review_comments": sum(len(r["comments"]) for r in pull.reviews),
        "maintainer_can_modify": False,
        "commits": len(pull.shas),
        "additions": sum(f.additions for f in files),
        "deletions": sum(f.deletions for f in files),
        "changed_files": len(files),
    }


def _diff_entry_json(api: str, repo: _Repo, sha: str, entry: FileDiff) -> dict[str, Any]:
    full = repo.full_name
    path = quote(entry.filename)
    item: dict[str, Any] = {
        "sha": _sha(full, entry.filename, entry.text),
        "filename": entry.filename,
        "status": entry.status,
        "additions": entry.additions,
        "deletions": entry.deletions,
        "changes": entry.additions + entry.deletions,
        "blob_url": f"{HTML_BASE}/{full}/blob/{sha}/{path}",
        "raw_url": f"{HTML_BASE}/{full}/raw/{sha}/{path}",
        "contents_url": f"{api}/repos/{full}/contents/{path}?ref={sha}",
    }
    if entry.patch is not None:
        item["patch"] = entry.patch
    if entry.previous_filename is not None:
        item["previous_filename"] = entry.previous_filename
    return item


def _review_json(api: str, repo: _Repo, pull: _Pull, review: dict[str, Any], user: _User) -> dict[str, Any]:
    html = f"{HTML_BASE}/{repo.full_name}/pull/{pull.number}#pullrequestreview-{review['id']}"
    pull_url = f"{api}/repos/{repo.full_name}/pulls/{pull.number}"
    association = "OWNER" if user.login == repo.owner.login else "CONTRIBUTOR" if user is pull.author else "NONE"
    item: dict[str, Any] = {
        "id": review["id"],
        "node_id": _node_id("PullRequestReview", review["id"]),
        "user": _user_json(api, user),
        "body": review["body"],
        "state": review["state"],
        "html_url": html,
        "pull_request_url": pull_url,
        "author_association": association,
        "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
        "commit_id": review["commit_id"],
    }
    if review["submitted_at"] is not None:  # GitHub omits it on PENDING reviews
        item["submitted_at"] = review["submitted_at"]
    return item


def _review_comment_json(api: str, repo: _Repo, pull: _Pull, review: dict[str, Any], index: int,
                         comment: dict[str, Any], user: _User) -> dict[str, Any]:
    """A pull-request-review-comment; ids derive from the review id so they stay stable."""
    comment_id = review["id"] * 100 + index
    url = f"{api}/repos/{repo.full_name}/pulls/comments/{comment_id}"
    html = f"{HTML_BASE}/{repo.full_name}/pull/{pull.number}#discussion_r{comment_id}"
    pull_url = f"{api}/repos/{repo.full_name}/pulls/{pull.number}"
    stamp = review["submitted_at"] or "2026-01-01T00:00:00Z"
    return {
        "id": comment_id, "node_id": _node_id("PullRequestReviewComment", comment_id), "url": url,
        "pull_request_review_id": review["id"], "diff_hunk": "", "path": comment["path"],
        "commit_id": review["commit_id"], "original_commit_id": review["commit_id"], "user": _user_json(api, user),
        "body": comment["body"], "created_at": stamp, "updated_at": stamp, "html_url": html,
        "pull_request_url": pull_url, "author_association": "NONE",
        "_links": {"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pull_url}},
        "line": comment["line"], "original_line": comment["line"], "side": comment["side"],
        "start_line": comment["start_line"], "original_start_line": comment["start_line"],
        "start_side": comment["start_side"], "subject_type": "line",
    }


def _content_json(api: str, repo: _Repo, path: str, ref: str, content: str) -> dict[str, Any]:
    """A file as `GET contents` shows it; above 1 MB GitHub sends its size but no content (encoding "none")."""
    data = content.encode()
    inline = len(data) <= MAX_INLINE_CONTENT_BYTES
    encoded = base64.b64encode(data).decode() if inline else ""
    wrapped = "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))
    sha = _blob_sha(data)
    url = f"{api}/repos/{repo.full_name}/contents/{quote(path)}?ref={quote(ref)}"
    git_url = f"{api}/repos/{repo.full_name}/git/blobs/{sha}"
    html_url = f"{HTML_BASE}/{repo.full_name}/blob/{ref}/{path}"
    return {
        "type": "file",
        "encoding": "base64" if inline else "none",
        "size": len(data),
        "name": posixpath.basename(path),
        "path": path,
        "content": wrapped,
        "sha": sha,
        "url": url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{path}",
        "_links": {"self": url, "git": git_url, "html": html_url},
    }


def _commit_json(api: str, repo: _Repo, sha: str, parent: str | None, stamp: str) -> dict[str, Any]:
    url = f"{api}/repos/{repo.full_name}/commits/{sha}"
    html = f"{HTML_BASE}/{repo.full_name}/commit/{sha}"
    person = {"name": "Emulated Author", "email": "author@example.com", "date": stamp}
    parents = (
        []
        if parent is None
        else [
            {
                "sha": parent,
                "url": f"{api}/repos/{repo.full_name}/commits/{parent}",
                "html_url": f"{HTML_BASE}/{repo.full_name}/commit/{parent}",
            }
        ]
    )
    git = {
        "url": f"{api}/repos/{repo.full_name}/git/commits/{sha}",
        "author": person,
        "committer": person,
        "message": f"Commit {sha[:7]}",
        "comment_count": 0,
        "tree": {"sha": _sha("tree", sha), "url": f"{api}/repos/{repo.full_name}/git/trees/{_sha('tree', sha)}"},
    }
    return {
        "url": url,
        "sha": sha,
        "node_id": _node_id("Commit", int(sha[:8], 16)),
        "html_url": html,
        "comments_url": f"{url}/comments",
        "commit": git,
        "author": None,
        "committer": None,
        "parents": parents,
    }


def _rate_json(quota: _Quota) -> dict[str, int]:
    return {"limit": quota.limit, "used": quota.used, "remaining": quota.limit - quota.used, "reset": quota.reset}


# --- review validation (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Draft:
    event: str | None  # None: a PENDING review
    body: str
    commit_id: str
    comments: tuple[dict[str, Any], ...]


_COMMENT_FIELDS: dict[str, type] = {
    "path": str,
    "body": str,
    "line": int,
    "side": str,
    "start_line": int,
    "start_side": str,
    "position": int,
}


def _unprocessable(errors: list[str]) -> Response:
    return _error(422, "Unprocessable Entity", REVIEW_DOCS_URL, errors=errors)


def _validation_failed(resource: str, message: str) -> Response:
    errors = [{"resource": resource, "code": "custom", "field": "body", "message": message}]
    return _error(422, "Validation Failed", REVIEW_DOCS_URL, errors=errors)


def _type_problem(where: str, value: Any, kind: type) -> str | None:
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return None
    noun = "an integer" if kind is int else "a string" if kind is str else "an array"
    return f"For '{where}', {json.dumps(value)} is not {noun}."


def _schema_problem(payload: dict[str, Any]) -> str | None:
    """What GitHub's JSON-schema check of the request body would say, before any diff logic runs."""
    for key in ("body", "event", "commit_id"):
        if problem := _type_problem(f"properties/{key}", payload.get(key), str):
            return problem
    comments = payload.get("comments")
    if problem := _type_problem("properties/comments", comments, list):
        return problem
    for comment in comments or []:
        if not isinstance(comment, dict):
            return f"For 'items', {json.dumps(comment)} is not an object."
        for key in ("path", "body"):
            if comment.get(key) is None:
                return f'"{key}" wasn\'t supplied.'
        for key, kind in _COMMENT_FIELDS.items():
            if problem := _type_problem(f"properties/{key}", comment.get(key), kind):
                return problem
    return None


def _anchor(comment: dict[str, Any], entry: FileDiff) -> tuple[str, int | None]:
    """(side, line) of a comment; the deprecated `position` is translated when `line` is absent."""
    position = comment.get("position")
    if comment.get("line") is None and position is not None:
        found = entry.positions[position] if 0 <= position < len(entry.positions) else None
        return found or ("RIGHT", None)
    return comment.get("side") or "RIGHT", comment.get("line")


def _comment_errors(comment: dict[str, Any], snapshot: _Snapshot) -> list[str]:
    entry = snapshot.file(comment["path"])
    if entry is None:
        return ["Path could not be resolved"]
    side, line = _anchor(comment, entry)
    hunk = entry.hunk_index(side, line) if line is not None and side in ("LEFT", "RIGHT") else None
    if hunk is None:
        return ["Line could not be resolved"]
    start = comment.get("start_line")
    if start is None:
        return []
    start_side = comment.get("start_side") or side
    if start_side != side or start >= line or entry.hunk_index(side, start) != hunk:
        return [SAME_HUNK]
    return []


def _stored_comment(comment: dict[str, Any], snapshot: _Snapshot) -> dict[str, Any]:
    entry = snapshot.file(comment["path"])
    assert entry is not None  # validated before
    side, line = _anchor(comment, entry)
    start = comment.get("start_line")
    start_side = (comment.get("start_side") or side) if start is not None else None
    return {
        "path": comment["path"],
        "line": line,
        "side": side,
        "start_line": start,
        "start_side": start_side,
        "body": comment["body"],
    }


def _event_problem(draft: _Draft, pull: _Pull, poster: _User) -> Response | None:
    if draft.event in ("COMMENT", "REQUEST_CHANGES") and not draft.body.strip() and not draft.comments:
        return _unprocessable([])  # GitHub answers this one with no explanation at all
    if draft.event in ("APPROVE", "REQUEST_CHANGES") and poster.login == pull.author.login:
        verb = "approve" if draft.event == "APPROVE" else "request changes on"
        return _unprocessable([f"Can not {verb} your own pull request"])
    pending = any(r["state"] == "PENDING" and r["user_login"] == poster.login for r in pull.reviews)
    if draft.event is None and pending:
        return _unprocessable(["User can only have one pending review per pull request"])
    return None


def check_review(payload: Any, pull: _Pull, poster: _User) -> _Draft | Response:
    """Validate a create-review body like GitHub does; a Response is the error to send back."""
    if not isinstance(payload, dict):
        return _error(400, "Problems parsing JSON")
    if problem := _schema_problem(payload):
        return _error(422, f"Invalid request.\n\n{problem}", REVIEW_DOCS_URL)
    event = payload.get("event")
    if event is not None and event not in REVIEW_STATES:
        return _unprocessable(["Variable $event of type PullRequestReviewEvent was provided invalid value"])
    snapshot = pull.snapshots.get(payload.get("commit_id") or pull.shas[-1])
    if snapshot is None:
        return _unprocessable(["The commitOID is not part of the pull request"])
    body, comments = payload.get("body") or "", payload.get("comments") or []
    if len(body) > MAX_BODY_CHARS:
        return _validation_failed(
            "PullRequestReview", f"body is too long (maximum is {MAX_BODY_CHARS} characters)"
        )
    if any(len(c["body"]) > MAX_BODY_CHARS for c in comments):
        return _validation_failed(
            "PullRequestReviewComment", f"body is too long (maximum is {MAX_BODY_CHARS} characters)"
        )
    if errors := [e for c in comments for e in _comment_errors(c, snapshot)]:
        return _unprocessable([_to_sentence(errors)])
    draft = _Draft(event, body, snapshot.sha, tuple(_stored_comment(c, snapshot) for c in comments))
    return _event_problem(draft, pull, poster) or draft


# --- the emulator ----------------------------------------------------------------------------------

_REPO = r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
_PULL = _REPO + r"/pulls/(?P<number>\d+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^/user$"), "_get_user"),
    ("GET", re.compile(r"^/rate_limit$"), "_get_rate_limit"),
    ("GET", re.compile(_REPO + r"$"), "_get_repo"),
    ("GET", re.compile(_REPO + r"/pulls$"), "_list_pulls"),
    ("GET", re.compile(_PULL + r"$"), "_get_pull"),
    ("GET", re.compile(_PULL + r"/files$"), "_list_files"),
    ("GET", re.compile(_PULL + r"/reviews$"), "_list_reviews"),
    ("GET", re.compile(_PULL + r"/comments$"), "_list_review_comments"),
    ("POST", re.compile(_PULL + r"/reviews$"), "_create_review"),
    ("GET", re.compile(_REPO + r"/contents/(?P<path>.+)$"), "_get_contents"),
    ("GET", re.compile(_REPO + r"/compare/(?P<basehead>.+)$"), "_compare"),
)


class GitHubEmulator:
    """GitHub's REST API for the endpoints `reviewer` calls, plus methods that let tests act as other users."""

    def __init__(
        self,
        *,
        token: str = "ghp_demo",
        login: str = "reviewer-bot",
        public_url: str | None = None,
        port: int = 0,
        installation_token_seconds: float = 3600.0,
    ) -> None:
        self._lock = threading.RLock()
        self._counters = {
            "user": 1, "repo": 100_000, "pull": 2_000_000, "review": 80_000_000, "seq": 0, "installation": 50_000_000
        }
        self.apps = AppRegistry(installation_token_seconds)  # `apps.token_seconds` may be changed by tests
        self._users: dict[str, _User] = {}
        self._tokens: dict[str, tuple[str, _Quota]] = {}
        self._anonymous = _Quota(ANONYMOUS_RATE_LIMIT, int(time.time()) + RATE_WINDOW_SECONDS)
        self._repos: dict[str, _Repo] = {}  # key: lower-cased full name, as GitHub's lookup is case-insensitive
        self.server = EmulatorServer(self._handle, public_url=public_url, port=port)
        self.add_token(token, login)

    # lifecycle ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> GitHubEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # test-side API --------------------------------------------------------------------------------

    def add_token(self, token: str, login: str, user_type: str = "User") -> None:
        with self._lock:
            self._ensure_user(login, user_type).type = user_type
            self._tokens[token] = (login, _Quota(RATE_LIMIT, int(time.time()) + RATE_WINDOW_SECONDS))

    def add_app(self, app_id: int, slug: str, public_key_pem: str, owner: str = "acme") -> None:
        """Register a GitHub App: JWTs signed by the matching private key with `iss` = app_id act as it."""
        with self._lock:
            self._ensure_user(owner, "Organization")
            self._ensure_user(f"{slug}[bot]", "Bot").type = "Bot"
            quota = _Quota(RATE_LIMIT, int(time.time()) + RATE_WINDOW_SECONDS)
            self.apps.apps[app_id] = App(app_id, slug, public_key_pem, owner, _now(), quota)

    def install_app(self, app_id: int, repos: Sequence[str]) -> int:
        """Install the App on these repositories (of one account); returns the installation id."""
        with self._lock:
            if app_id not in self.apps.apps:
                raise KeyError(f"unknown app {app_id}; call add_app first")
            names = {self._repo(name).full_name.lower() for name in repos}
            account = repos[0].partition("/")[0] if repos else self.apps.apps[app_id].owner_login
            installation = Installation(self._next("installation"), app_id, account, names, _now(),
                                        _Quota(RATE_LIMIT, int(time.time()) + RATE_WINDOW_SECONDS))
            self.apps.installations[installation.id] = installation
            return installation.id

    def expire_installation_tokens(self) -> None:
        """Every installation token issued so far answers 401 "Bad credentials" from now on."""
        with self._lock:
            self.apps.expire_all()

    def add_repo(self, full_name: str, default_branch: str = "main") -> None:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repository name must be 'owner/name', got {full_name!r}")
        with self._lock:
            if full_name.lower() not in self._repos:
                self._repos[full_name.lower()] = _Repo(
                    full_name, self._next("repo"), self._ensure_user(owner, "Organization"), default_branch, _now()
                )

    def add_file(self, full_name: str, path: str, content: str, ref: str | None = None) -> None:
        with self._lock:
            repo = self._repo(full_name)
            repo.files.setdefault(ref or repo.default_branch, {})[path.strip("/")] = content

    def open_pull(
        self,
        full_name: str,
        *,
        title: str,
        diff: str,
        author: str = "alice",
        author_type: str = "User",
        draft: bool = False,
        labels: Sequence[str] = (),
        head_ref: str | None = None,
        base_ref: str = "main",
        body: str = "",
    ) -> int:
        with self._lock:
            repo = self._repo(full_name)
            number = max(repo.pulls, default=0) + 1
            stamp = _now()
            pull = _Pull(
                number,
                self._next("pull"),
                title,
                body,
                self._ensure_user(author, author_type),
                draft,
                list(labels),
                head_ref or f"{author.removesuffix('[bot]')}/change-{number}",
                base_ref,
                _sha(repo.full_name, "base", base_ref),
                stamp,
                stamp,
                self._next("seq"),
            )
            self._add_snapshot(repo, pull, diff)
            repo.pulls[number] = pull
            return number

    def push(self, full_name: str, number: int, diff: str) -> str:
        with self._lock:
            repo, pull = self._pull(full_name, number)
            self._add_snapshot(repo, pull, diff)
            self._touch(pull)
            return pull.shas[-1]

    def close_pull(self, full_name: str, number: int, merged: bool = False) -> None:
        with self._lock:
            _, pull = self._pull(full_name, number)
            pull.state, pull.merged, pull.closed_at = "closed", merged, _now()
            pull.merged_at = pull.closed_at if merged else None
            self._touch(pull)

    def set_draft(self, full_name: str, number: int, draft: bool) -> None:
        with self._lock:
            _, pull = self._pull(full_name, number)
            pull.draft = draft
            self._touch(pull)

    def set_labels(self, full_name: str, number: int, labels: Sequence[str]) -> None:
        with self._lock:
            _, pull = self._pull(full_name, number)
            pull.labels = list(labels)
            self._touch(pull)

    def add_review(
        self, full_name: str, number: int, *, login: str, body: str, commit_id: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            _, pull = self._pull(full_name, number)
            sha = commit_id or pull.shas[-1]
            if sha not in pull.snapshots:
                raise ValueError(f"{sha} is not a commit of {full_name}#{number}")
            review = self._store_review(pull, self._ensure_user(login, "User"), _Draft("COMMENT", body, sha, ()))
            return _copy(review)

    def reviews(self, full_name: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [_copy(review) for review in self._pull(full_name, number)[1].reviews]

    def head_sha(self, full_name: str, number: int) -> str:
        with self._lock:
            return self._pull(full_name, number)[1].shas[-1]

    def pull_diff(self, full_name: str, number: int, sha: str | None = None) -> str:
        with self._lock:
            pull = self._pull(full_name, number)[1]
            return pull.snapshots[sha or pull.shas[-1]].diff

    # state helpers ----------------------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self._counters[kind] += 1
        return self._counters[kind]

    def _ensure_user(self, login: str, user_type: str) -> _User:
        if login not in self._users:
            self._users[login] = _User(login, self._next("user"), user_type)
        return self._users[login]

    def _repo(self, full_name: str) -> _Repo:
        try:
            return self._repos[full_name.lower()]
        except KeyError:
            raise KeyError(f"unknown repository {full_name!r}; call add_repo first") from None

    def _pull(self, full_name: str, number: int) -> tuple[_Repo, _Pull]:
        repo = self._repo(full_name)
        if number not in repo.pulls:
            raise KeyError(f"unknown pull request {full_name}#{number}")
        return repo, repo.pulls[number]

    def _add_snapshot(self, repo: _Repo, pull: _Pull, diff: str) -> None:
        # the push counter makes re-pushing an identical diff still produce a new head sha
        sha = _sha(repo.full_name, pull.number, diff, len(pull.shas))
        pull.snapshots[sha] = _Snapshot(sha, diff, parse_diff(diff))
        pull.shas.append(sha)

    def _touch(self, pull: _Pull) -> None:
        pull.updated_at, pull.updated_seq = _now(), self._next("seq")

    def _store_review(self, pull: _Pull, poster: _User, draft: _Draft) -> dict[str, Any]:
        review = {
            "id": self._next("review"),
            "user_login": poster.login,
            "body": draft.body,
            "commit_id": draft.commit_id,
            "event": draft.event,
            "state": REVIEW_STATES[draft.event] if draft.event else "PENDING",
            "comments": [dict(c) for c in draft.comments],
            "submitted_at": _now() if draft.event else None,
        }
        pull.reviews.append(review)
        if draft.event:
            self._touch(pull)  # as on GitHub, a submitted review updates the pull request (its listing changes)
        return review

    # serving ----------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        path = self._local_path(request.path)
        with self._lock:
            token = _token(request.headers.get("authorization"))
            if token and looks_like_jwt(token):
                return self._handle_app(request, path, token)
            login, quota = self._tokens.get(token or "", (None, self._anonymous))
            quota.roll(time.time())
            refusal = self._installation_refusal(token, path) if login is not None else None
            if login is None:
                response = _error(401, "Requires authentication" if token is None else "Bad credentials")
            elif refusal is not None:
                response = refusal
            else:
                response = _conditional(request, self._dispatch(request, path, self._users[login], quota))
            if response.status != 304 and path != "/rate_limit":  # as on GitHub: neither counts
                quota.used += 1
            response.headers.update(_rate_headers(quota))
            return response

    # GitHub Apps ----------------------------------------------------------------------------------------

    def _installation_refusal(self, token: str | None, path: str) -> Response | None:
        """What GitHub says to an installation token that is expired or outside its installation."""
        grant = self.apps.grants.get(token or "")
        if grant is None:
            return None
        if grant.expired(time.time()):
            return _error(401, "Bad credentials")
        if path == "/user":
            return _error(403, NOT_INTEGRATION, "https://docs.github.com/rest/users/users#get-the-authenticated-user")
        match = re.match(_REPO, path)
        repos = self.apps.installations[grant.installation_id].repositories
        if match and f"{unquote(match['owner'])}/{unquote(match['name'])}".lower() not in repos:
            return _error(404, "Not Found")
        return None

    def _handle_app(self, request: Request, path: str, token: str) -> Response:
        """A request authenticated with a JWT: the App acting as itself."""
        now = time.time()
        app = self.apps.app_from_jwt(token, now)
        if isinstance(app, str):
            return _error(401, app)
        app.quota.roll(now)
        response = self._app_route(request, path, app, now)
        app.quota.used += 1
        response.headers.update(_rate_headers(app.quota))
        return response

    def _app_route(self, request: Request, path: str, app: App, now: float) -> Response:
        owner = _user_json(self.url, self._users[app.owner_login])
        if request.method == "GET" and path == "/app":
            count = sum(1 for i in self.apps.installations.values() if i.app_id == app.id)
            return Response.json(200, app_json(self.url, app, owner, count))
        repo_match = re.match(_REPO + r"/installation$", path)
        if request.method == "GET" and repo_match:
            repo = self._repos.get(f"{unquote(repo_match['owner'])}/{unquote(repo_match['name'])}".lower())
            installation = self.apps.installation_of(app, repo.full_name) if repo else None
            if installation is None:
                docs = f"{APP_DOCS_URL}#get-a-repository-installation-for-the-authenticated-app"
                return _error(404, "Not Found", docs)
            account = _user_json(self.url, self._ensure_user(installation.account_login, "Organization"))
            return Response.json(200, installation_json(self.url, app, installation, account))
        token_match = re.match(r"^/app/installations/(\d+)/access_tokens$", path)
        if request.method == "POST" and token_match:
            installation = self.apps.installations.get(int(token_match[1]))
            if installation is None or installation.app_id != app.id:
                return _error(404, "Not Found", f"{APP_DOCS_URL}#create-an-installation-access-token-for-an-app")
            grant = self.apps.issue(installation, now)
            self._tokens[grant.token] = (app.bot_login, installation.quota)
            return Response.json(201, token_json(grant))
        if path.startswith("/app"):
            return _error(404, "Not Found")
        return _error(403, NOT_INTEGRATION)  # a JWT acts only as the App, not on repositories

    def _local_path(self, path: str) -> str:
        # behind a proxy or with a path prefix in public_url, the requests carry that prefix
        prefix = urlsplit(self.url).path.rstrip("/")
        if prefix and path.startswith(prefix):
            return path[len(prefix) :] or "/"
        return path

    def _dispatch(self, request: Request, path: str, user: _User, quota: _Quota) -> Response:
        for method, pattern, name in _ROUTES:
            match = pattern.match(path)
            if match is None or method != request.method:
                continue
            groups = {key: unquote(value) for key, value in match.groupdict().items()}
            repo = self._repos.get(f"{groups['owner']}/{groups['name']}".lower()) if "owner" in groups else None
            pull = repo.pulls.get(int(groups["number"])) if repo and "number" in groups else None
            if ("owner" in groups and repo is None) or ("number" in groups and pull is None):
                break
            params = {key: values[0] for key, values in request.query.items()}
            handler: Callable[[_Call, dict[str, str]], Response] = getattr(self, name)
            return handler(_Call(request, user, quota, repo, pull, params, path), groups)
        return _error(404, "Not Found")

    def _page(self, call: _Call, items: list[dict[str, Any]]) -> Response:
        per_page = min(max(_int_param(call.params.get("per_page"), DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
        page = max(_int_param(call.params.get("page"), 1), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        rels = [("prev", min(page - 1, last))] if page > 1 else []
        rels += [("next", page + 1), ("last", last)] if page < last else []
        rels += [("first", 1)] if page > 1 else []
        links = [
            f'<{self.url}{call.path}?{urlencode({**call.params, "page": n})}>; rel="{rel}"' for rel, n in rels
        ]
        return Response.json(200, chunk, {"Link": ", ".join(links)} if links else {})

    # endpoints --------------------------------------------------------------------------------------

    def _get_user(self, call: _Call, groups: dict[str, str]) -> Response:
        return Response.json(200, _private_user_json(self.url, call.user))

    def _get_rate_limit(self, call: _Call, groups: dict[str, str]) -> Response:
        core = _rate_json(call.quota)
        search = {"limit": 30, "used": 0, "remaining": 30, "reset": call.quota.reset}
        graphql = {**core, "used": 0, "remaining": core["limit"]}
        resources = {
            "core": core,
            "search": search,
            "graphql": graphql,
            "code_search": {**search, "limit": 10, "remaining": 10},
        }
        return Response.json(200, {"resources": resources, "rate": core})

    def _get_repo(self, call: _Call, groups: dict[str, str]) -> Response:
        assert call.repo is not None
        return Response.json(200, _repo_json(self.url, call.repo))

    def _list_pulls(self, call: _Call, groups: dict[str, str]) -> Response:
        repo, params = call.repo, call.params
        assert repo is not None
        state, sort = params.get("state", "open"), params.get("sort", "created")
        if state not in ("open", "closed", "all"):
            return _error(
                422, "Validation Failed", errors=[{"resource": "PullRequest", "field": "state", "code": "invalid"}]
            )
        pulls = [p for p in repo.pulls.values() if state in ("all", p.state)]
        pulls = [p for p in pulls if params.get("base", p.base_ref) == p.base_ref]
        pulls = [p for p in pulls if params.get("head", "").rpartition(":")[2] in ("", p.head_ref)]
        # GitHub: direction defaults to desc for sort=created, asc for the other sorts
        descending = params.get("direction", "desc" if sort == "created" else "asc") == "desc"
        pulls.sort(key=lambda p: p.updated_seq if sort == "updated" else p.number, reverse=descending)
        return self._page(call, [_pull_simple_json(self.url, repo, p) for p in pulls])

    def _get_pull(self, call: _Call, groups: dict[str, str]) -> Response:
        repo, pull = call.repo, call.pull
        assert repo is not None and pull is not None
        if _wants_diff(call.request):
            if len(pull.head.files) > MAX_DIFF_FILES:
                too_large = [{"resource": "PullRequest", "field": "diff", "code": "too_large"}]
                return _error(406, TOO_LARGE_MESSAGE, FILES_DOCS_URL, errors=too_large)
            return _diff_response(pull.head.diff)
        merged_by = repo.owner if pull.merged else None
        return Response.json(200, _pull_json(self.url, repo, pull, merged_by))

    def _list_files(self, call: _Call, groups: dict[str, str]) -> Response:
        repo, pull = call.repo, call.pull
        assert repo is not None and pull is not None
        head = pull.head
        items = [_diff_entry_json(self.url, repo, head.sha, f) for f in head.files[:MAX_LISTED_FILES]]
        return self._page(call, items)

    def _list_reviews(self, call: _Call, groups: dict[str, str]) -> Response:
        repo, pull = call.repo, call.pull
        assert repo is not None and pull is not None
        items = [_review_json(self.url, repo, pull, r, self._users[r["user_login"]]) for r in pull.reviews]
        return self._page(call, items)

    def _list_review_comments(self, call: _Call, groups: dict[str, str]) -> Response:
        repo, pull = call.repo, call.pull
        assert repo is not None and pull is not None
        items = [
            _review_comment_json(self.url, repo, pull, review, index, comment, self._users[review["user_login"]])
            for review in pull.reviews
            for index, comment in enumerate(review["comments"])
        ]
        return self._page(call, items)

    def _create_review(self, call: _Call, groups: dict[str, str]) -> Response:
        repo, pull = call.repo, call.pull
        assert repo is not None and pull is not None
        try:
            payload = call.request.json()
        except ValueError:
            return _error(400, "Problems parsing JSON")
        draft = check_review({} if payload is None else payload, pull, call.user)
        if isinstance(draft, Response):
            return draft
        review = self._store_review(pull, call.user, draft)
        return Response.json(200, _review_json(self.url, repo, pull, review, call.user))

    def _get_contents(self, call: _Call, groups: dict[str, str]) -> Response:
        repo = call.repo
        assert repo is not None
        path, ref = groups["path"].strip("/"), call.params.get("ref") or repo.default_branch
        content = self._content_at_ref(repo, ref, path)
        if not isinstance(content, str):
            return _error(404, "Not Found", "https://docs.github.com/rest/repos/contents#get-repository-content")
        return Response.json(200, _content_json(self.url, repo, path, ref, content))

    def _compare(self, call: _Call, groups: dict[str, str]) -> Response:
        repo = call.repo
        assert repo is not None
        base, dots, head = groups["basehead"].partition("...")
        found = self._find_snapshot(repo, head) if dots else None
        if found is None or (
            base not in found[0].snapshots and base not in (found[0].base_sha, found[0].base_ref)
        ):
            return _error(404, "Not Found", "https://docs.github.com/rest/commits/commits#compare-two-commits")
        pull, head_snapshot = found
        base_snapshot = pull.snapshots.get(base)
        files = self._interdiff(repo, pull, base_snapshot, head_snapshot)
        if _wants_diff(call.request):
            return _diff_response("".join(f.text for f in files))
        return Response.json(200, self._comparison_json(repo, pull, base, base_snapshot, head_snapshot, files))

    # contents and compare -----------------------------------------------------------------------------

    def _find_snapshot(self, repo: _Repo, ref: str) -> tuple[_Pull, _Snapshot] | None:
        """A PR commit by sha, or the head of the newest PR whose head branch is `ref`."""
        for pull in sorted(repo.pulls.values(), key=lambda p: p.number, reverse=True):
            if ref in pull.snapshots:
                return pull, pull.snapshots[ref]
            if ref == pull.head_ref:
                return pull, pull.head
        return None

    def _content_at_ref(self, repo: _Repo, ref: str, path: str) -> str | _Absent | None:
        stored = repo.files.get(ref, {})
        if path in stored:
            return stored[path]
        found = self._find_snapshot(repo, ref)
        if found is not None:
            return self._content_in_pull(repo, found[0], found[1], path)
        base_ref = next((p.base_ref for p in repo.pulls.values() if p.base_sha == ref), ref)
        return repo.files.get(base_ref, {}).get(path, ABSENT)

    def _content_in_pull(self, repo: _Repo, pull: _Pull, snapshot: _Snapshot, path: str) -> str | _Absent | None:
        """The file at a PR commit: base-branch content with that commit's hunks applied; None if unknowable."""
        base_files = repo.files.get(pull.base_ref, {})
        entry = snapshot.file(path)
        if entry is None:
            return ABSENT if snapshot.renamed_away(path) else base_files.get(path, ABSENT)
        if entry.status == "removed":
            return ABSENT
        if entry.patch is None and entry.status != "renamed":
            return None  # binary: the diff does not carry the bytes
        old = "" if entry.status == "added" else base_files.get(entry.previous_filename or path)
        return None if old is None else apply_patch(old, entry.parsed)

    def _interdiff(
        self, repo: _Repo, pull: _Pull, base: _Snapshot | None, head: _Snapshot
    ) -> tuple[FileDiff, ...]:
        """Files changed between two commits of one PR. Exact where contents can be rebuilt (added files, or
        base-branch content given with add_file); otherwise the head's entry when its hunks changed."""
        if base is None:
            return head.files
        changes: dict[str, tuple[str | None, str | None]] = {}
        fallback: list[FileDiff] = []
        paths = {name for s in (base, head) for f in s.files for name in (f.filename, f.previous_filename) if name}
        for path in sorted(paths):
            old = self._content_in_pull(repo, pull, base, path)
            new = self._content_in_pull(repo, pull, head, path)
            if old is None or new is None:
                entry, prior = head.file(path), base.file(path)
                if entry is not None and (prior is None or prior.text != entry.text):
                    fallback.append(entry)
            elif old != new:
                changes[path] = (old if isinstance(old, str) else None, new if isinstance(new, str) else None)
        return tuple(sorted(parse_diff(make_diff(changes)) + tuple(fallback), key=lambda f: f.filename))

    def _comparison_json(
        self,
        repo: _Repo,
        pull: _Pull,
        base: str,
        base_snapshot: _Snapshot | None,
        head: _Snapshot,
        files: tuple[FileDiff, ...],
    ) -> dict[str, Any]:
        base_index = pull.shas.index(base_snapshot.sha) if base_snapshot else -1
        head_index = pull.shas.index(head.sha)
        ahead, behind = max(head_index - base_index, 0), max(base_index - head_index, 0)
        chain = [pull.base_sha, *pull.shas]  # chain[i + 1] is pull.shas[i]; its parent is chain[i]
        commits = [
            _commit_json(self.url, repo, chain[i + 1], chain[i], pull.created_at)
            for i in range(base_index + 1, head_index + 1)
        ]
        base_sha = base_snapshot.sha if base_snapshot else pull.base_sha
        base_commit = _commit_json(
            self.url, repo, base_sha, chain[base_index] if base_index >= 0 else None, pull.created_at
        )
        spec = f"{base}...{head.sha}"
        html = f"{HTML_BASE}/{repo.full_name}/compare/{spec}"
        status = "identical" if ahead == behind == 0 else "behind" if behind else "ahead"
        return {
            "url": f"{self.url}/repos/{repo.full_name}/compare/{spec}",
            "html_url": html,
            "permalink_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "base_commit": base_commit,
            "merge_base_commit": base_commit,
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": ahead,
            "commits": commits,
            "files": [_diff_entry_json(self.url, repo, head.sha, f) for f in files],
        }


def _token(header: str | None) -> str | None:
    """The credential of an Authorization header; "" for a header in a scheme we do not accept."""
    if header is None:
        return None
    scheme, _, credential = header.strip().partition(" ")
    return credential.strip() if scheme.lower() in ("token", "bearer") else ""


def _wants_diff(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(media_type in accept for media_type in DIFF_MEDIA_TYPES)


def _diff_response(text: str) -> Response:
    return Response(200, text.encode(), {"Content-Type": "application/vnd.github.diff; charset=utf-8"})


def _conditional(request: Request, response: Response) -> Response:
    """Add a strong ETag to successful GETs, and answer 304 when the client already has that body."""
    if request.method != "GET" or response.status != 200:
        return response
    etag = f'"{hashlib.sha256(response.body).hexdigest()}"'
    response.headers["ETag"] = etag
    wanted = request.headers.get("if-none-match", "")
    if wanted.strip() == "*" or etag in (tag.strip().removeprefix("W/") for tag in wanted.split(",")):
        return Response(304, b"", {"ETag": etag})
    return response


def _rate_headers(quota: _Quota) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(quota.limit),
        "x-ratelimit-remaining": str(max(quota.limit - quota.used, 0)),
        "x-ratelimit-used": str(quota.used),
        "x-ratelimit-reset": str(quota.reset),
        "x-ratelimit-resource": "core",
    }


def _copy(review: dict[str, Any]) -> dict[str, Any]:
    return {**review, "comments": [dict(c) for c in review["comments"]]}
