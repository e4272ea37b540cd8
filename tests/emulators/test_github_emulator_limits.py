"""The GitHub emulator's real shapes for hostile input, driven by PyGithub over HTTP: file names quoted in
diffs exactly as git quotes them but real in JSON, the 3,000-file cap of the file listing next to the
pull request's full `changed_files`, and `GET contents` sending no content above 1 MB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github import Auth, Github, GithubException

from reviewer.emulators.github import GitHubEmulator
from reviewer.emulators.samples import make_diff

TOKEN = "ghp_test"
REPO = "acme/limits"
NAMES = ["café.py", "my file.py", 'quo"te.py', "tab\there.py", "new\nline.py", "back\\slash.py"]


@pytest.fixture(scope="module")
def gh() -> Iterator[GitHubEmulator]:
    with GitHubEmulator(token=TOKEN) as emulator:
        emulator.add_repo(REPO)
        yield emulator


@pytest.fixture
def client(gh: GitHubEmulator) -> Iterator[Github]:
    github = Github(auth=Auth.Token(TOKEN), base_url=gh.url, retry=None, per_page=100,
                    seconds_between_requests=None, seconds_between_writes=None)
    yield github
    github.close()


def test_quoted_names_in_the_diff_real_names_in_json(gh: GitHubEmulator, client: Github) -> None:
    diff = make_diff({name: ("a = 1\n", "a = 2\n") for name in NAMES}) + (
        'diff --git "a/caf\\303\\251/x.py" "b/th\\303\\251/x.py"\nsimilarity index 100%\n'
        'rename from "caf\\303\\251/x.py"\nrename to "th\\303\\251/x.py"\n')
    number = gh.open_pull(REPO, title="Names", diff=diff)
    status, _, served = client.requester.requestJson("GET", f"/repos/{REPO}/pulls/{number}",
                                                     headers={"Accept": "application/vnd.github.diff"})
    assert status == 200 and served == diff and '+++ "b/caf\\303\\251.py"\n' in served
    pull = client.get_repo(REPO).get_pull(number)
    files = {f.filename: f for f in pull.get_files()}
    assert set(files) == {*NAMES, "thé/x.py"}
    assert files["thé/x.py"].previous_filename == "café/x.py" and files["thé/x.py"].changes == 0
    assert files["thé/x.py"].patch is None and files["tab\there.py"].patch == "@@ -1 +1 @@\n-a = 1\n+a = 2"


def test_a_comment_anchors_on_the_real_path_not_the_quoted_one(gh: GitHubEmulator, client: Github) -> None:
    number = gh.open_pull(REPO, title="Names", diff=make_diff({name: ("a = 1\n", "a = 2\n") for name in NAMES}))
    repo = client.withLazy(True).get_repo(REPO)
    commit = repo.get_commit(gh.head_sha(REPO, number))  # lazy: the emulator serves no commits
    comments = [{"path": name, "line": 1, "side": "RIGHT", "body": "here"} for name in NAMES]
    review = repo.get_pull(number).create_review(commit=commit, body="b", event="COMMENT", comments=comments)  # type: ignore[arg-type]
    assert review.id and {c["path"] for c in gh.reviews(REPO, number)[-1]["comments"]} == set(NAMES)
    with pytest.raises(GithubException) as info:
        repo.get_pull(number).create_review(commit=commit, body="b", event="COMMENT", comments=[
            {"path": '"caf\\303\\251.py"', "line": 1, "side": "RIGHT", "body": "quoted"}])
    assert info.value.status == 422 and "Path could not be resolved" in str(info.value.data)


def test_the_file_listing_stops_at_3000_while_changed_files_counts_all(gh: GitHubEmulator, client: Github) -> None:
    number = gh.open_pull(REPO, title="Huge", diff=make_diff({f"gen/f{i:04}.py": (None, f"X = {i}\n")
                                                             for i in range(3005)}))
    pull = client.get_repo(REPO).get_pull(number)
    listed = [f.filename for f in pull.get_files()]
    assert pull.changed_files == 3005 and len(listed) == 3000 and listed[-1] == "gen/f2999.py"


def test_contents_over_1_mb_come_without_content(gh: GitHubEmulator, client: Github) -> None:
    gh.add_file(REPO, "big.yml", "x" * (1024 * 1024 + 1))
    gh.add_file(REPO, "small.yml", "y: 1\n")
    status, _, raw = client.requester.requestJson("GET", f"/repos/{REPO}/contents/big.yml")
    assert status == 200 and '"encoding": "none"' in raw and '"content": ""' in raw
    big = client.get_repo(REPO).get_contents("big.yml")
    assert not isinstance(big, list) and big.size == 1024 * 1024 + 1 and big.encoding == "none"
    small = client.get_repo(REPO).get_contents("small.yml")
    assert not isinstance(small, list) and small.decoded_content == b"y: 1\n"
