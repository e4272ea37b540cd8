"""The PyGithub clients behind the GitHub adapter: who they authenticate as, how they retry and how long
they may wait.

- Personal token (`GITHUB_TOKEN`): one client for every repository; its identity is the token's user.
- GitHub App (`github.app_id` + private key): the installation of each repository is looked up once per
  process with the App's JWT (`GET /repos/{o}/{r}/installation`, unless `github.installation_id` pins
  one), and each installation gets its own client, whose `AppInstallationAuth` mints the installation
  token on first use and mints a new one before it expires. The identity is `<app slug>[bot]`.

Every client shares one retry policy: reads retry on 5xx and rate limits, writes never retry (posting is
made idempotent by a marker instead), and no wait longer than `github.max_wait_seconds` is ever slept
inside a job. GithubRetry caps only the waits it computes itself (primary reset, secondary back-off);
`CappedRetry` applies the same cap to a `Retry-After` header, which urllib3 would otherwise sleep out
whatever its length. A wait over the cap raises `RateLimitExceededExceedsMaxWait`, which the adapter
turns into `RateLimited` so that the stage defers the work to a later run.
"""

from __future__ import annotations

import json
import threading
from types import TracebackType
from typing import Any

from github import Auth, Github, GithubIntegration, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from reviewer.config import GitHubApp, Settings, require_github_token

PAGE_SIZE = 100
SECONDARY_RATE_WAIT_SECONDS = 60  # GitHub: wait at least a minute after a secondary limit without Retry-After
READ_METHODS = frozenset({"GET", "HEAD"})


class CappedRetry(GithubRetry):
    """GithubRetry whose `max_rate_limit_wait` also caps `Retry-After` (403, 429 and 503 answers)."""

    def increment(  # type: ignore[override]
        self, method: str | None = None, url: str | None = None, response: Any = None,
        error: Exception | None = None, _pool: Any = None, _stacktrace: TracebackType | None = None,
    ) -> Retry:
        wait = _retry_after(self, response)
        if wait is not None and self.max_rate_limit_wait is not None and wait > self.max_rate_limit_wait:
            raise RateLimitExceededExceedsMaxWait(response.status, _content(response, url),
                                                  dict(response.headers), wait=wait)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _retry_after(retry: Retry, response: Any) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    if value is None:
        return None
    try:
        return retry.parse_retry_after(value)
    except InvalidHeader:
        return None


def _content(response: Any, url: str | None) -> Any:
    raw = GithubRetry.get_content(response, url or "")
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw.decode("utf-8", errors="replace")[:200]}


class _OneClient(Github):
    """A lazy `Github` whose `withLazy(True)` is itself. PyGithub builds a new client, with a new
    requester, on every `withLazy` call; one shared requester keeps the rate-limit headers of every
    response, the request pacing and the connection in one place."""

    def withLazy(self, lazy: bool) -> Github:
        return self if lazy else super().withLazy(lazy)


class Clients:
    """One PyGithub client per credential, chosen per repository; built from Settings."""

    def __init__(self, settings: Settings) -> None:
        token = require_github_token(settings)
        options = settings.github
        retry = CappedRetry(total=3, connect=1, backoff_factor=0.5, allowed_methods=READ_METHODS,
                            secondary_rate_wait=SECONDARY_RATE_WAIT_SECONDS,
                            max_rate_limit_wait=options.max_wait_seconds)
        self._options: dict[str, Any] = dict(
            base_url=settings.github_api_url, timeout=int(options.timeout_seconds), per_page=PAGE_SIZE,
            retry=retry, seconds_between_requests=options.request_pause_seconds or None,
            seconds_between_writes=options.write_pause_seconds or None,
        )
        self.app: GitHubApp | None = settings.github_app
        self._token_client = _OneClient(auth=Auth.Token(token), lazy=True, **self._options) if token else None
        self._app_auth = Auth.AppAuth(self.app.app_id, self.app.private_key) if self.app else None
        self._integration: GithubIntegration | None = None
        self._installations: dict[str, int] = {}  # repository -> installation id, for this process
        self._installation_clients: dict[int, Github] = {}
        self._lock = threading.Lock()
        self.last_used: Github | None = self._token_client

    @property
    def credential_hint(self) -> str:
        if self.app is None:
            return "check GITHUB_TOKEN"
        return f"check the GitHub App id ({self.app.app_id}) and its private key, and that it is installed"

    def for_repository(self, repository: str) -> Github:
        """The client that may act on `repository`; in App mode this may look up its installation."""
        if self._token_client is not None:
            return self._token_client
        installation = self._installation_of(repository)
        with self._lock:
            client = self._installation_clients.get(installation)
            if client is None:
                assert self._app_auth is not None
                auth = self._app_auth.get_installation_auth(installation)
                client = self._installation_clients[installation] = _OneClient(auth=auth, lazy=True, **self._options)
            self.last_used = client
        return client

    def own_login(self) -> str:
        """The login the service's reviews are posted under."""
        if self._token_client is not None:
            return str(self._token_client.get_user().login)
        return f"{self.integration().get_app().slug}[bot]"

    def integration(self) -> GithubIntegration:
        """App-level calls, authenticated with a fresh JWT each time."""
        if self._integration is None:
            assert self._app_auth is not None
            self._integration = GithubIntegration(auth=self._app_auth, **self._options)
        return self._integration

    def close(self) -> None:
        """Close the connections of the token client, the installation clients and the App client,
        and of the client each installation's auth mints its tokens with (PyGithub builds that one
        itself and does not close it with the installation's client)."""
        with self._lock:
            clients: list[Github | GithubIntegration] = list(self._installation_clients.values())
            if self._token_client is not None:
                clients.append(self._token_client)
            if self._integration is not None:
                clients.append(self._integration)
            for installation_client in self._installation_clients.values():
                auth = installation_client.requester.auth
                minter = getattr(auth, "_AppInstallationAuth__integration", None)
                if isinstance(minter, GithubIntegration):
                    clients.append(minter)
            self._installation_clients.clear()
            self._integration = None
        for each in clients:
            each.close()

    def _installation_of(self, repository: str) -> int:
        assert self.app is not None
        if self.app.installation_id is not None:
            return self.app.installation_id
        if repository not in self._installations:
            owner, _, name = repository.partition("/")
            self._installations[repository] = int(self.integration().get_repo_installation(owner, name).id)
        return self._installations[repository]
