"""The GitHub emulator's App endpoints, driven by the real PyGithub App auth (JWT, installations,
installation tokens that act as `<slug>[bot]` and expire)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from github import Auth, BadCredentialsException, Github, GithubException, GithubIntegration, UnknownObjectException

from reviewer.emulators.github import GitHubEmulator
from reviewer.emulators.samples import make_diff
from tests.appkeys import app_keys

APP_ID = 4242
SLUG = "acme-reviewer"
REPO, OTHER, NOT_INSTALLED = "acme/api", "acme/web", "acme/secret"


@pytest.fixture
def gh() -> Iterator[GitHubEmulator]:
    with GitHubEmulator(token="ghp_owner") as emulator:
        for name in (REPO, OTHER, NOT_INSTALLED):
            emulator.add_repo(name)
        emulator.open_pull(REPO, title="Add a", diff=make_diff({"a.py": (None, "A = 1\n")}))
        emulator.add_app(APP_ID, SLUG, app_keys().public_pem)
        yield emulator


def _app_auth(private_pem: str | None = None, app_id: int = APP_ID) -> Auth.AppAuth:
    return Auth.AppAuth(app_id, private_pem or app_keys().private_pem)


def _integration(gh: GitHubEmulator, auth: Auth.AppAuth | None = None) -> GithubIntegration:
    return GithubIntegration(auth=auth or _app_auth(), base_url=gh.url)


def _installation_client(gh: GitHubEmulator, installation: int) -> Github:
    return Github(auth=_app_auth().get_installation_auth(installation), base_url=gh.url, retry=None,
                  seconds_between_requests=None, seconds_between_writes=None)


def test_app_jwt_identifies_the_app_and_finds_installations(gh: GitHubEmulator) -> None:
    installation = gh.install_app(APP_ID, [REPO, OTHER])
    integration = _integration(gh)
    app = integration.get_app()
    assert (app.id, app.slug) == (APP_ID, SLUG)
    assert integration.get_repo_installation("acme", "web").id == installation
    with pytest.raises(UnknownObjectException):
        integration.get_repo_installation("acme", "secret")
    token = integration.get_access_token(installation)
    assert token.token.startswith("ghs_") and token.expires_at.timestamp() > time.time() + 3000


@pytest.mark.parametrize("auth,words", [
    (lambda: _app_auth(app_keys("other").private_pem), "could not be decoded"),
    (lambda: _app_auth(app_id=999), "could not be decoded"),
])
def test_a_jwt_from_the_wrong_key_or_app_is_refused(gh: GitHubEmulator, auth, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GithubException) as refused:
        _integration(gh, auth()).get_app()
    assert refused.value.status == 401 and words in str(refused.value.data)


def test_an_expired_or_overlong_jwt_is_refused(gh: GitHubEmulator) -> None:
    now = int(time.time())
    for claims, words in (({"iat": now - 900, "exp": now - 300}, "Expiration time"),
                          ({"iat": now, "exp": now + 3600}, "too far in the future")):
        token = jwt.encode({**claims, "iss": str(APP_ID)}, app_keys().private_pem, algorithm="RS256")
        with pytest.raises(GithubException) as refused:
            client = Github(auth=Auth.AppAuthToken(token), base_url=gh.url, retry=None)
            client.requester.requestJsonAndCheck("GET", "/app")
        assert refused.value.status == 401 and words in str(refused.value.data)


def test_installation_token_acts_as_the_bot_on_its_repositories_only(gh: GitHubEmulator) -> None:
    client = _installation_client(gh, gh.install_app(APP_ID, [REPO]))
    repo = client.withLazy(True).get_repo(REPO)
    pull = repo.get_pull(1)
    review = pull.create_review(commit=repo.get_commit(gh.head_sha(REPO, 1)), body="looks fine", event="COMMENT")
    assert (review.user.login, review.user.type) == (f"{SLUG}[bot]", "Bot")
    assert gh.reviews(REPO, 1)[0]["user_login"] == f"{SLUG}[bot]"
    with pytest.raises(UnknownObjectException):
        client.get_repo(NOT_INSTALLED)
    with pytest.raises(GithubException) as refused:
        client.get_user().login  # noqa: B018 (the request is the point)
    assert refused.value.status == 403 and "not accessible by integration" in str(refused.value.data)


def test_a_jwt_does_not_act_on_repositories(gh: GitHubEmulator) -> None:
    client = Github(auth=_app_auth(), base_url=gh.url, retry=None)
    with pytest.raises(GithubException) as refused:
        client.get_repo(REPO)
    assert refused.value.status == 403


def test_an_expired_installation_token_gets_bad_credentials(gh: GitHubEmulator) -> None:
    installation = gh.install_app(APP_ID, [REPO])
    token = _integration(gh).get_access_token(installation).token
    client = Github(auth=Auth.Token(token), base_url=gh.url, retry=None)
    assert client.get_repo(REPO).full_name == REPO
    gh.expire_installation_tokens()
    with pytest.raises(BadCredentialsException) as refused:
        client.get_repo(REPO)
    assert refused.value.status == 401 and refused.value.data["message"] == "Bad credentials"


def test_pygithub_mints_a_new_token_before_the_old_one_expires(gh: GitHubEmulator) -> None:
    # PyGithub renews a token 20 s before its expires_at: a 21 s token is renewed about a second after minting
    gh.apps.token_seconds = 21
    client = _installation_client(gh, gh.install_app(APP_ID, [REPO]))
    assert client.get_repo(REPO).full_name == REPO
    time.sleep(1.2)
    assert client.get_repo(REPO).full_name == REPO
    minted = [r for r in gh.server.requests if r.path.endswith("/access_tokens")]
    used = [r.headers["authorization"] for r in gh.server.requests if r.path == f"/repos/{REPO}"]
    assert [r.status for r in minted] == [201, 201]
    assert len(set(used)) == 2 and all(r.status < 300 for r in gh.server.requests)
