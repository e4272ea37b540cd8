"""End-to-end fixtures: `service` is a `reviewer` configured for one repository (acme/api) on the
emulators, on both database engines, with its schema migrated."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    svc = write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}])
    assert svc.cli("db", "upgrade").exit_code == 0
    return svc
