"""Where the GitHub adapter keeps the ETag and the answer of each listed page between requests, so that
the next listing sends `If-None-Match` and an unchanged page comes back 304, which costs no quota.

`MemoryPageCache` is good for one process (the service); `DbPageCache` keeps the pages in the `http_cache`
table, so that a `reviewer cycle` started by cron sends `If-None-Match` with the ETag the previous run
saw, and an unchanged listing comes back 304, which costs no rate-limit quota.

The cache is best effort: a row lost to a race between two instances only costs one full answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from reviewer.db import transaction, utcnow
from reviewer.models import HttpCacheEntry


@dataclass(frozen=True)
class CachedPage:
    etag: str
    body: str  # JSON: {"items": [trimmed pull requests], "next": URL of the next page or null}


class PageCache(Protocol):
    """Where the ETag and the answer of each listed page are kept between requests (per URL)."""

    def get(self, url: str) -> CachedPage | None: ...

    def put(self, url: str, etag: str, body: str) -> None: ...


class MemoryPageCache:
    """The adapter's default cache: good for one process (the service); cron runs pass a DB one."""

    def __init__(self) -> None:
        self._pages: dict[str, CachedPage] = {}

    def get(self, url: str) -> CachedPage | None:
        return self._pages.get(url)

    def put(self, url: str, etag: str, body: str) -> None:
        self._pages[url] = CachedPage(etag, body)


class DbPageCache:
    """`PageCache` over the `http_cache` table (one row per URL)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def get(self, url: str) -> CachedPage | None:
        with self._sessions() as session:
            row = session.get(HttpCacheEntry, url)
            return CachedPage(row.etag, row.body) if row is not None else None

    def put(self, url: str, etag: str, body: str) -> None:
        try:
            with transaction(self._sessions) as session:
                row = session.get(HttpCacheEntry, url)
                if row is None:
                    session.add(HttpCacheEntry(url=url, etag=etag, body=body, updated_at=self._clock()))
                else:
                    row.etag, row.body, row.updated_at = etag, body, self._clock()
        except IntegrityError:
            pass  # another instance stored the same URL a moment earlier; its answer is as good
