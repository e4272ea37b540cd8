"""GitHub Apps for the GitHub emulator: apps registered with their public key, installations on
repositories, the RS256 JWT check of app-level requests, and installation tokens.

As on GitHub (shared/reference/github.md §1.1, §2.6): app-level endpoints (`GET /app`,
`GET /repos/{o}/{r}/installation`, `POST /app/installations/{id}/access_tokens`) take a JWT signed with
the App's private key (`iss` = app id, `exp` at most ten minutes ahead); an installation token acts as
`<slug>[bot]` (type Bot) on the installation's repositories only, answers 404 for any other repository,
403 on `/user`, and 401 "Bad credentials" once it has expired.

Pure helpers and state; `GitHubEmulator` holds the lock and routes requests here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

JWT_MAX_SECONDS = 600  # GitHub refuses an `exp` more than ten minutes ahead
CLOCK_SLACK_SECONDS = 60  # GitHub tolerates this much clock drift between the App and itself
APP_PERMISSIONS = {"contents": "read", "metadata": "read", "pull_requests": "write"}
NOT_DECODED = "A JSON web token could not be decoded"
EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the "
    "assertion expires"
)
TOO_LONG = "'Expiration time' claim ('exp') is too far in the future"
NOT_INTEGRATION = "Resource not accessible by integration"
APP_DOCS_URL = "https://docs.github.com/rest/apps/apps"


@dataclass
class App:
    id: int
    slug: str
    public_key_pem: str
    owner_login: str
    created_at: str
    quota: Any  # the emulator's quota object for JWT requests

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"


@dataclass
class Installation:
    id: int
    app_id: int
    account_login: str
    repositories: set[str]  # lower-cased full names
    created_at: str
    quota: Any  # shared by every token of the installation, as on GitHub


@dataclass(frozen=True)
class Grant:
    """One installation token."""

    token: str
    installation_id: int
    expires_at: float  # Unix time

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


@dataclass
class AppRegistry:
    token_seconds: float = 3600.0  # lifetime of installation tokens; GitHub's is one hour
    apps: dict[int, App] = field(default_factory=dict)
    installations: dict[int, Installation] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)

    def app_from_jwt(self, token: str, now: float) -> App | str:
        """The App that signed `token`, or the message of GitHub's 401."""
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            app = self.apps.get(int(str(issuer)))
        except (jwt.InvalidTokenError, TypeError, ValueError):
            return NOT_DECODED
        if app is None:
            return NOT_DECODED
        try:
            claims = jwt.decode(token, app.public_key_pem, algorithms=["RS256"], leeway=CLOCK_SLACK_SECONDS,
                                options={"require": ["exp", "iat", "iss"]})
        except jwt.ExpiredSignatureError:
            return EXPIRED
        except jwt.InvalidTokenError:
            return NOT_DECODED
        if float(claims["exp"]) > now + JWT_MAX_SECONDS + CLOCK_SLACK_SECONDS:
            return TOO_LONG
        return app

    def installation_of(self, app: App, full_name: str) -> Installation | None:
        for installation in self.installations.values():
            if installation.app_id == app.id and full_name.lower() in installation.repositories:
                return installation
        return None

    def issue(self, installation: Installation, now: float) -> Grant:
        grant = Grant(f"ghs_{secrets.token_hex(18)}", installation.id, now + self.token_seconds)
        self.grants[grant.token] = grant
        return grant

    def expire_all(self) -> None:
        for token, grant in list(self.grants.items()):
            self.grants[token] = Grant(grant.token, grant.installation_id, 0.0)


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def app_json(api: str, app: App, owner: dict[str, Any], installations: int) -> dict[str, Any]:
    return {
        "id": app.id,
        "slug": app.slug,
        "node_id": f"A_{app.id}",
        "client_id": f"Iv1.{app.id:016x}",
        "owner": owner,
        "name": app.slug.replace("-", " ").title(),
        "description": "",
        "external_url": f"https://github.com/apps/{app.slug}",
        "html_url": f"https://github.com/apps/{app.slug}",
        "created_at": app.created_at,
        "updated_at": app.created_at,
        "permissions": APP_PERMISSIONS,
        "events": ["pull_request"],
        "installations_count": installations,
    }


def installation_json(api: str, app: App, installation: Installation, account: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": installation.id,
        "account": account,
        "repository_selection": "selected",
        "access_tokens_url": f"{api}/app/installations/{installation.id}/access_tokens",
        "repositories_url": f"{api}/installation/repositories",
        "html_url": f"https://github.com/organizations/{installation.account_login}/settings/installations/"
        f"{installation.id}",
        "app_id": app.id,
        "app_slug": app.slug,
        "target_id": account["id"],
        "target_type": account["type"],
        "permissions": APP_PERMISSIONS,
        "events": ["pull_request"],
        "created_at": installation.created_at,
        "updated_at": installation.created_at,
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def token_json(grant: Grant) -> dict[str, Any]:
    return {
        "token": grant.token,
        "expires_at": iso(grant.expires_at),
        "permissions": APP_PERMISSIONS,
        "repository_selection": "selected",
    }
