"""Helpers for end-to-end tests: realistic little diffs and read-only looks into the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from reviewer.db import make_engine, session_factory
from reviewer.emulators.samples import make_diff
from reviewer.models import Batch, JobEvent, Result, ReviewJob

REPO = "acme/api"

BEFORE = '''import sqlite3


def find_user(conn: sqlite3.Connection, user_id: int):
    cur = conn.execute("SELECT id, name FROM users WHERE id = ?", (user_id,))
    return cur.fetchone()
'''


def after_for(version: int = 1) -> str:
    """The new side of `app/users_N.py` in diff_for(N, version): a search built by string formatting."""
    return BEFORE + f'''

def search_users_v{version}(conn: sqlite3.Connection, name: str):
    # added in revision {version}
    cur = conn.execute(f"SELECT id, name FROM users WHERE name LIKE '%{{name}}%'")
    return cur.fetchall()
'''


def diff_for(index: int, version: int = 1) -> str:
    return make_diff({f"app/users_{index}.py": (BEFORE, after_for(version))})


def big_diff(files: int) -> str:
    return make_diff({f"gen/file_{i:04d}.py": (None, f"VALUE_{i} = {i}\n") for i in range(files)})


def read(database_url: str, model: Any, **filters: Any) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            query = select(model).filter_by(**filters).order_by(model.id)
            return list(session.scalars(query))
    finally:
        engine.dispose()


def jobs(database_url: str, **filters: Any) -> list[ReviewJob]:
    return read(database_url, ReviewJob, **filters)


def results(database_url: str, **filters: Any) -> list[Result]:
    return read(database_url, Result, **filters)


def batches(database_url: str, **filters: Any) -> list[Batch]:
    return read(database_url, Batch, **filters)


def events(database_url: str, job_id: int) -> list[JobEvent]:
    return read(database_url, JobEvent, job_id=job_id)


def own_reviews(github: Any, repo: str, number: int, login: str = "reviewer-bot") -> list[dict[str, Any]]:
    return [r for r in github.reviews(repo, number) if r["user_login"] == login]


def ok(result: Any) -> str:
    """The output of a CLI run that must have succeeded (else the assertion shows the output)."""
    assert result.exit_code == 0, result.output
    return str(result.output)
