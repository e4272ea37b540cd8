"""The GitHub emulator, driven by the real PyGithub client over HTTP (no patching of PyGithub)."""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from github import Auth, BadCredentialsException, Github, GithubException, UnknownObjectException
from github.ContentFile import ContentFile
from github.PullRequest import PullRequest
from github.Repository import Repository

from reviewer.emulators.github import GitHubEmulator, apply_patch, parse_diff
from reviewer.emulators.samples import make_diff, seed_demo

TOKEN = "ghp_test"
DIFF_ACCEPT = {"Accept": "application/vnd.github.diff"}

# a.py: hunks at new lines 1-7 and 16-22 once the two edits below are applied
A_OLD = "".join(f"line {n}\n" for n in range(1, 21))
A_NEW = A_OLD.replace("line 4\n", "line four\n").replace("line 18\n", "line 18\nline 18b\n")
B_NEW = "print('hello')\n"
_repo_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def gh() -> Iterator[GitHubEmulator]:
    # one server for the module: stopping a ThreadingHTTPServer waits out its 0.5 s poll interval
    with GitHubEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def client(gh: GitHubEmulator) -> Iterator[Github]:
    github = _client(gh.url, TOKEN)
    yield github
    github.close()


@pytest.fixture
def repo_name(gh: GitHubEmulator) -> str:
    name = f"acme/repo{next(_repo_numbers)}"
    gh.add_repo(name)
    return name


@pytest.fixture
def pull(gh: GitHubEmulator, repo_name: str) -> int:
    gh.add_file(repo_name, "a.py", A_OLD)
    return gh.open_pull(
        repo_name, title="Edit a, add b", diff=make_diff({"a.py": (A_OLD, A_NEW), "b.py": (None, B_NEW)})
    )


def _client(url: str, token: str, **options: Any) -> Github:
    return Github(
        auth=Auth.Token(token),
        base_url=url,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        **options,
    )


def _pull(client: Github, repo_name: str, number: int) -> PullRequest:
    return client.withLazy(True).get_repo(repo_name).get_pull(number)


def _file(repo: Repository, path: str, ref: str | None = None) -> ContentFile:
    found = repo.get_contents(path, ref=ref) if ref else repo.get_contents(path)
    assert isinstance(found, ContentFile)
    return found


def _post(
    client: Github, gh: GitHubEmulator, repo_name: str, number: int, sha: str | None = None, **review: Any
) -> Any:
    commit = client.withLazy(True).get_repo(repo_name).get_commit(sha or gh.head_sha(repo_name, number))
    return _pull(client, repo_name, number).create_review(commit=commit, **review)


# --- listing -------------------------------------------------------------------------------------


def test_lists_open_pulls_across_pages(gh: GitHubEmulator, repo_name: str) -> None:
    numbers = [
        gh.open_pull(repo_name, title=f"PR {i}", diff=make_diff({f"f{i}.py": (None, "x = 1\n")})) for i in range(5)
    ]
    gh.close_pull(repo_name, numbers[0])
    gh.set_draft(repo_name, numbers[1], True)
    client = _client(gh.url, TOKEN, per_page=2)
    before = gh.server.count("GET", f"/repos/{repo_name}/pulls")

    pulls = list(client.withLazy(True).get_repo(repo_name).get_pulls())

    assert [p.number for p in pulls] == sorted(numbers[1:], reverse=True)  # created, desc
    assert [p.draft for p in pulls][-1] is True
    assert gh.server.count("GET", f"/repos/{repo_name}/pulls") - before == 2
    closed = client.withLazy(True).get_repo(repo_name).get_pulls(state="closed")
    assert [p.number for p in closed] == [numbers[0]]
    assert client.withLazy(True).get_repo(repo_name).get_pulls(state="all").totalCount == 5
    client.close()


def test_link_header_shape(gh: GitHubEmulator, client: Github, repo_name: str) -> None:
    for i in range(5):
        gh.open_pull(repo_name, title=f"PR {i}", diff=make_diff({"x.py": (None, f"x = {i}\n")}))
    path = f"/repos/{repo_name}/pulls"

    _, headers, _ = client.requester.requestJson("GET", path, parameters={"per_page": 2, "page": 2})

    url = f"{gh.url}{path}?page={{}}&per_page=2"  # the client's own parameter order is kept
    assert headers["link"] == ", ".join(
        f'<{url.format(page)}>; rel="{rel}"' for rel, page in (("prev", 1), ("next", 3), ("last", 3), ("first", 1))
    )


def test_list_answers_304_to_matching_etag_without_spending_rate_limit(
    gh: GitHubEmulator, client: Github, repo_name: str, pull: int
) -> None:
    path = f"/repos/{repo_name}/pulls"
    status, headers, body = client.requester.requestJson("GET", path)
    assert status == 200 and json.loads(body)[0]["number"] == pull

    again, again_headers, again_body = client.requester.requestJson(
        "GET", path, headers={"If-None-Match": headers["etag"]}
    )

    assert (again, again_body) == (304, "")
    assert again_headers["x-ratelimit-remaining"] == headers["x-ratelimit-remaining"]
    gh.set_labels(repo_name, pull, ["bug"])
    changed, _, _ = client.requester.requestJson("GET", path, headers={"If-None-Match": headers["etag"]})
    assert changed == 200


def test_bot_author_and_pull_fields(gh: GitHubEmulator, client: Github, repo_name: str) -> None:
    number = gh.open_pull(
        repo_name,
        title="Bump x",
        diff=make_diff({"req.txt": ("x==1\n", "x==2\n")}),
        author="dependabot[bot]",
        author_type="Bot",
        labels=["dependencies"],
    )

    pr = client.get_repo(repo_name).get_pull(number)

    assert (pr.user.login, pr.user.type) == ("dependabot[bot]", "Bot")
    assert [label.name for label in pr.labels] == ["dependencies"]
    assert (pr.additions, pr.deletions, pr.changed_files, pr.commits) == (1, 1, 1, 1)
    assert pr.head.sha == gh.head_sha(repo_name, number) and pr.mergeable is True
    assert pr.update() is False  # conditional GET: 304


# --- diff and files ------------------------------------------------------------------------------


def test_diff_media_type(gh: GitHubEmulator, client: Github, repo_name: str, pull: int) -> None:
    status, headers, text = client.requester.requestJson(
        "GET", f"/repos/{repo_name}/pulls/{pull}", headers=DIFF_ACCEPT
    )

    assert status == 200
    assert headers["content-type"] == "application/vnd.github.diff; charset=utf-8"
    assert text == gh.pull_diff(repo_name, pull)


def test_406_above_300_files_and_files_listing_fallback(
    gh: GitHubEmulator, client: Github, repo_name: str
) -> None:
    changes: dict[str, tuple[str | None, str | None]] = {
        f"pkg/m{i:03}.py": (None, f"X = {i}\n") for i in range(301)
    }
    number = gh.open_pull(repo_name, title="Huge", diff=make_diff(changes))

    status, _, text = client.requester.requestJson(
        "GET", f"/repos/{repo_name}/pulls/{number}", headers=DIFF_ACCEPT
    )
    before = gh.server.count("GET", f"/repos/{repo_name}/pulls/{number}/files")
    files = list(
        _client(gh.url, TOKEN, per_page=100).withLazy(True).get_repo(repo_name).get_pull(number).get_files()
    )

    assert status == 406
    assert json.loads(text) == {
        "message": "Sorry, the diff exceeded the maximum number of files (300). Consider using 'List pull "
        "requests files' API or locally cloning the repository instead.",
        "errors": [{"resource": "PullRequest", "field": "diff", "code": "too_large"}],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#list-pull-requests-files",
        "status": "406",
    }
    assert len(files) == 301 and files[0].filename == "pkg/m000.py"
    assert files[0].status == "added" and files[0].patch == "@@ -0,0 +1 @@\n+X = 0"
    assert gh.server.count("GET", f"/repos/{repo_name}/pulls/{number}/files") - before == 4


def test_files_statuses_renames_and_binary(gh: GitHubEmulator, client: Github, repo_name: str) -> None:
    diff = make_diff({"a.py": (A_OLD, A_NEW), "gone.py": ("x = 1\n", None)}) + (
        "diff --git a/old/name.py b/new/name.py\nsimilarity index 100%\nrename from old/name.py\n"
        "rename to new/name.py\ndiff --git a/logo.png b/logo.png\nnew file mode 100644\nindex 0000000..3333333\n"
        "Binary files /dev/null and b/logo.png differ\n"
    )
    number = gh.open_pull(repo_name, title="Mixed", diff=diff)

    files = {f.filename: f for f in _pull(client, repo_name, number).get_files()}

    assert {name: f.status for name, f in files.items()} == {
        "a.py": "modified",
        "gone.py": "removed",
        "new/name.py": "renamed",
        "logo.png": "added",
    }
    assert files["a.py"].patch.startswith("@@ -1,7 +1,7 @@\n line 1\n") and not files["a.py"].patch.endswith("\n")
    assert (files["a.py"].additions, files["a.py"].deletions, files["a.py"].changes) == (2, 1, 3)
    assert files["new/name.py"].previous_filename == "old/name.py"
    assert files["logo.png"].patch is None
    assert files["a.py"].contents_url.startswith(f"{gh.url}/repos/{repo_name}/contents/a.py?ref=")


# --- reviews -------------------------------------------------------------------------------------


def test_create_review_with_inline_comments(gh: GitHubEmulator, client: Github, repo_name: str, pull: int) -> None:
    comments = [
        {"path": "a.py", "line": 4, "side": "RIGHT", "body": "renamed?"},
        {"path": "a.py", "start_line": 16, "start_side": "RIGHT", "line": 20, "side": "RIGHT", "body": "range"},
        {"path": "a.py", "line": 4, "side": "LEFT", "body": "old line"},
        {"path": "b.py", "line": 1, "body": "new file"},
    ]

    review = _post(
        client, gh, repo_name, pull, body="summary <!-- reviewer:item=1 -->", event="COMMENT", comments=comments
    )

    assert review.state == "COMMENTED" and review.commit_id == gh.head_sha(repo_name, pull)
    assert review.html_url == f"https://github.com/{repo_name}/pull/{pull}#pullrequestreview-{review.id}"
    [stored] = gh.reviews(repo_name, pull)
    assert stored["id"] == review.id and stored["user_login"] == "reviewer-bot" and stored["event"] == "COMMENT"
    assert stored["comments"][1] == {
        "path": "a.py",
        "line": 20,
        "side": "RIGHT",
        "start_line": 16,
        "start_side": "RIGHT",
        "body": "range",
    }
    assert stored["comments"][3]["side"] == "RIGHT"
    listed = list(_pull(client, repo_name, pull).get_reviews())
    assert [(r.id, r.user.login, r.body) for r in listed] == [(review.id, "reviewer-bot", stored["body"])]


@pytest.mark.parametrize(
    ("comments", "error"),
    [
        ([{"path": "a.py", "line": 12, "body": "outside any hunk"}], "Line could not be resolved"),
        (
            [
                {"path": "a.py", "line": 4, "side": "LEFT", "body": "x"},
                {"path": "a.py", "line": 21, "side": "LEFT", "body": "line 21 exists on the new side only"},
            ],
            "Line could not be resolved",
        ),
        (
            [{"path": "a.py", "start_line": 5, "line": 17, "body": "crosses hunks"}],
            "Pull request review thread start line must be part of the same hunk as the line.",
        ),
        (
            [{"path": "a.py", "start_line": 6, "line": 5, "body": "backwards"}],
            "Pull request review thread start line must be part of the same hunk as the line.",
        ),
        ([{"path": "nope.py", "line": 1, "body": "x"}], "Path could not be resolved"),
        (
            [
                {"path": "a.py", "line": 12, "body": "x"},
                {"path": "nope.py", "line": 1, "body": "x"},
                {"path": "b.py", "line": 2, "body": "x"},
            ],
            "Line could not be resolved, Path could not be resolved, and Line could not be resolved",
        ),
    ],
)
def test_review_rejected_for_unresolvable_comments(
    gh: GitHubEmulator, client: Github, repo_name: str, pull: int, comments: list[dict[str, Any]], error: str
) -> None:
    with pytest.raises(GithubException) as caught:
        _post(client, gh, repo_name, pull, body="b", event="COMMENT", comments=comments)

    assert caught.value.status == 422
    assert caught.value.data["errors"] == [error] and caught.value.data["message"] == "Unprocessable Entity"
    assert gh.reviews(repo_name, pull) == []  # all or nothing


def test_review_rejected_for_commit_outside_the_pull(
    gh: GitHubEmulator, client: Github, repo_name: str, pull: int
) -> None:
    with pytest.raises(GithubException) as caught:
        _post(client, gh, repo_name, pull, sha="f" * 40, body="b", event="COMMENT")

    assert caught.value.status == 422
    assert caught.value.data["errors"] == ["The commitOID is not part of the pull request"]


def test_review_rejected_for_too_long_body(gh: GitHubEmulator, client: Github, repo_name: str, pull: int) -> None:
    _post(client, gh, repo_name, pull, body="x" * 65536, event="COMMENT")  # exactly the limit is fine

    with pytest.raises(GithubException) as caught:
        _post(client, gh, repo_name, pull, body="x" * 65537, event="COMMENT")

    assert caught.value.status == 422 and caught.value.data["message"] == "Validation Failed"
    assert caught.value.data["errors"][0]["message"] == "body is too long (maximum is 65536 characters)"


@pytest.mark.parametrize(
    ("review", "error"),
    [
        (
            {"body": "b", "event": "LGTM"},
            "Variable $event of type PullRequestReviewEvent was provided invalid value",
        ),
        ({"body": "", "event": "COMMENT"}, None),
    ],
)
def test_review_rejected_for_bad_event_or_empty_comment(
    gh: GitHubEmulator, client: Github, repo_name: str, pull: int, review: dict[str, Any], error: str | None
) -> None:
    with pytest.raises(GithubException) as caught:
        _post(client, gh, repo_name, pull, **review)

    assert caught.value.status == 422
    assert caught.value.data["errors"] == ([error] if error else [])


def test_push_moves_head_and_old_sha_stays_reviewable(
    gh: GitHubEmulator, client: Github, repo_name: str, pull: int
) -> None:
    old_sha = gh.head_sha(repo_name, pull)
    c_new = "def c():\n    return 3\n"
    changes = {
        "a.py": (A_OLD, A_NEW.replace("line 2\n", "line two\n")),
        "b.py": (None, B_NEW),
        "c.py": (None, c_new),
    }

    new_sha = gh.push(repo_name, pull, make_diff(changes))
    review = _post(
        client,
        gh,
        repo_name,
        pull,
        sha=old_sha,
        body="late",
        event="COMMENT",
        comments=[{"path": "a.py", "line": 4, "body": "on the old commit"}],
    )

    assert new_sha != old_sha and client.get_repo(repo_name).get_pull(pull).head.sha == new_sha
    assert review.commit_id == old_sha
    assert gh.pull_diff(repo_name, pull, old_sha) != gh.pull_diff(repo_name, pull)
    with pytest.raises(GithubException):  # c.py does not exist at the old commit
        _post(
            client,
            gh,
            repo_name,
            pull,
            sha=old_sha,
            body="b",
            event="COMMENT",
            comments=[{"path": "c.py", "line": 1, "body": "x"}],
        )
    comparison = client.get_repo(repo_name).compare(old_sha, new_sha)
    assert (comparison.status, comparison.ahead_by, comparison.total_commits) == ("ahead", 1, 1)
    assert {f.filename: f.status for f in comparison.files} == {"a.py": "modified", "c.py": "added"}
    a_patch = next(f.patch for f in comparison.files if f.filename == "a.py")
    assert "-line 2\n+line two" in a_patch and "+line four" not in a_patch  # the earlier push is not repeated
    _, _, text = client.requester.requestJson(
        "GET", f"/repos/{repo_name}/compare/{old_sha}...{new_sha}", headers=DIFF_ACCEPT
    )
    assert "diff --git a/c.py b/c.py" in text and "b.py" not in text


def test_other_users_reviews_and_pending(gh: GitHubEmulator, client: Github, repo_name: str, pull: int) -> None:
    gh.add_token("ghp_mallory", "mallory")
    fake = gh.add_review(repo_name, pull, login="carol", body="<!-- reviewer:item=1 --> not the bot")
    mallory = _client(gh.url, "ghp_mallory")

    _post(mallory, gh, repo_name, pull, body="draft")  # no event: PENDING
    with pytest.raises(GithubException) as caught:
        _post(mallory, gh, repo_name, pull, body="draft again")

    assert caught.value.data["errors"] == ["User can only have one pending review per pull request"]
    logins = [(r.user.login, r.state) for r in _pull(client, repo_name, pull).get_reviews()]
    assert logins == [("carol", "COMMENTED"), ("mallory", "PENDING")] and fake["state"] == "COMMENTED"
    mallory.close()


# --- auth, rate limits, contents -----------------------------------------------------------------


def test_wrong_token_and_no_token(gh: GitHubEmulator, repo_name: str) -> None:
    with pytest.raises(BadCredentialsException) as caught:
        _client(gh.url, "ghp_wrong").get_repo(repo_name)
    anonymous = Github(base_url=gh.url, retry=None, seconds_between_requests=None, seconds_between_writes=None)
    with pytest.raises(GithubException) as unauthenticated:
        anonymous.get_repo(repo_name)

    assert caught.value.status == 401 and caught.value.data["message"] == "Bad credentials"
    assert unauthenticated.value.status == 401
    assert unauthenticated.value.data["message"] == "Requires authentication"
    anonymous.close()


def test_user_unknown_repo_and_rate_limit(gh: GitHubEmulator) -> None:
    gh.add_token("ghp_rate", "rater")
    client = _client(gh.url, "ghp_rate")

    assert client.get_user().login == "rater"
    with pytest.raises(UnknownObjectException):
        client.get_repo("acme/missing")
    overview = client.get_rate_limit()
    again = client.get_rate_limit()  # /rate_limit itself does not count

    assert overview.resources.core.remaining == again.resources.core.remaining == 4998
    assert client.rate_limiting == (4998, 5000)
    client.close()


def test_contents_by_branch_sha_and_missing(gh: GitHubEmulator, client: Github, repo_name: str, pull: int) -> None:
    gh.add_file(repo_name, ".github/reviewer.yml", "model: claude\n")
    gh.add_file(repo_name, ".github/reviewer.yml", "model: other\n", ref="release")
    repo = client.withLazy(True).get_repo(repo_name)
    head = gh.head_sha(repo_name, pull)

    default = _file(repo, ".github/reviewer.yml")
    on_branch = _file(repo, ".github/reviewer.yml", ref="release")
    at_head = _file(repo, "a.py", ref=head)

    assert default.decoded_content == b"model: claude\n" and on_branch.decoded_content == b"model: other\n"
    assert (
        at_head.decoded_content.decode() == A_NEW
        and _file(repo, "b.py", ref=head).decoded_content == B_NEW.encode()
    )
    assert all(len(line) <= 60 for line in at_head.content.splitlines())
    assert _file(repo, ".github/reviewer.yml", ref=head).decoded_content == b"model: claude\n"
    with pytest.raises(UnknownObjectException):
        repo.get_contents("b.py")  # only added on the PR branch
    with pytest.raises(UnknownObjectException):
        repo.get_contents("a.py", ref="no-such-branch")


# --- fault switches ------------------------------------------------------------------------------


def test_fail_next_answers_once_with_the_fault(
    gh: GitHubEmulator, client: Github, repo_name: str, pull: int
) -> None:
    gh.server.fail_next("GET", rf"^/repos/{repo_name}/pulls$", 502, {"message": "Bad Gateway"})
    repo = client.withLazy(True).get_repo(repo_name)

    with pytest.raises(GithubException) as caught:
        list(repo.get_pulls())

    assert caught.value.status == 502
    assert [p.number for p in repo.get_pulls()] == [pull]


def test_hold_after_processing_stores_before_answering(
    gh: GitHubEmulator, client: Github, repo_name: str, pull: int
) -> None:
    hold = gh.server.hold_after_processing("POST", rf"^/repos/{repo_name}/pulls/{pull}/reviews$")
    results: list[Any] = []
    poster = threading.Thread(
        target=lambda: results.append(_post(client, gh, repo_name, pull, body="b", event="COMMENT"))
    )
    poster.start()

    assert hold.reached.wait(5)
    assert len(gh.reviews(repo_name, pull)) == 1 and results == []  # stored, answer not sent yet
    hold.release()
    poster.join(5)
    assert results[0].id == gh.reviews(repo_name, pull)[0]["id"]


# --- public URL with a path prefix, seed data, make_diff ------------------------------------------


def test_public_url_with_prefix_is_used_in_links() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v3"
    with GitHubEmulator(public_url=url, port=port) as gh:
        gh.add_repo("acme/p")
        for i in range(3):
            gh.open_pull("acme/p", title=f"PR {i}", diff=make_diff({"x.py": (None, f"x = {i}\n")}))
        client = _client(gh.url, "ghp_demo", per_page=1)

        pulls = list(client.withLazy(True).get_repo("acme/p").get_pulls())

        assert gh.url == url and len(pulls) == 3 and pulls[0].url.startswith(url)
        client.close()


def test_seed_demo(gh: GitHubEmulator, client: Github) -> None:
    opened = seed_demo(gh)

    pulls = {
        (name, p.number): p for name in ("acme/payments", "acme/web") for p in client.get_repo(name).get_pulls()
    }
    assert set(opened) <= set(pulls) and 5 <= len(opened) <= 8
    assert any(p.draft for p in pulls.values()) and any(p.user.type == "Bot" for p in pulls.values())
    for name, number in opened:
        repo = client.withLazy(True).get_repo(name)
        for entry in parse_diff(gh.pull_diff(name, number)):
            if entry.status == "modified":  # the base branch holds the before side; the head rebuilds the after
                before = base64.b64decode(_file(repo, entry.filename).content).decode()
                after = _file(repo, entry.filename, ref=gh.head_sha(name, number)).decoded_content.decode()
                assert apply_patch(before, entry.parsed) == after and before != after


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a\nb\nc\n", "a\nB\nc\n"),
        (None, "x\ny\n"),
        ("x\n", None),
        ("a\nb", "a\nb\n"),
        ("a\n", "a\nb"),
        ("", "z\n"),
    ],
)
def test_make_diff_round_trips(old: str | None, new: str | None) -> None:
    [entry] = parse_diff(make_diff({"f.txt": (old, new)}))

    assert entry.status == ("added" if old is None else "removed" if new is None else "modified")
    assert apply_patch(old or "", entry.parsed) == (new or "")
