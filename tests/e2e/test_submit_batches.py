"""How submit fills batches (issue 10): chunk by chunk into a body spooled to a file, cut before the byte
or request limit, every job in exactly one batch, and the create body holding exactly the requests
`prepare_request` makes. The limits are lowered through submit's own constants (our seam, not the SDK's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from reviewer import submit
from reviewer.config import load_settings
from reviewer.db import make_engine, session_factory
from reviewer.jobs import Prepared, prepare_request, request_json
from reviewer.models import ReviewJob, deployment_prefix
from reviewer.spool import RequestSpool, body_size
from tests.conftest import Service, write_service
from tests.e2e.helpers import REPO, batches, diff_for, events, jobs, ok

OTHER = "acme/web"


@pytest.fixture
def service(tmp_path: Path, database_url: str, github, anthropic_api) -> Service:  # type: ignore[no-untyped-def]
    for name in (REPO, OTHER):
        github.add_repo(name)
    github.add_file(OTHER, ".github/reviewer.yml", "instructions: Check the web templates.\nignore: ['*.md']\n")
    return write_service(tmp_path, database_url, github, anthropic_api, [{"name": REPO}, {"name": OTHER}])


def queue(service: Service, per_repository: int) -> None:
    for name in (REPO, OTHER):
        for i in range(1, per_repository + 1):
            service.github.open_pull(name, title=f"Change {i}", diff=diff_for(i))
    ok(service.cli("collect"))


def create_sizes(service: Service) -> list[int]:
    """The Content-Length of each create the emulator was sent."""
    return [int(r.headers["content-length"]) for r in service.anthropic.server.requests
            if r.method == "POST" and r.path == "/v1/messages/batches"]


def prepared(service: Service) -> list[Prepared]:
    """What `prepare_request` makes of each queued job, in id order (the order submit reads them)."""
    settings = load_settings(str(service.config_path), service.env)
    engine = make_engine(service.database_url)
    try:
        with session_factory(engine)() as session:
            prefix = deployment_prefix(session)
            made = [prepare_request(job, settings, prefix)
                    for job in session.scalars(select(ReviewJob).order_by(ReviewJob.id))]
    finally:
        engine.dispose()
    return [p for p in made if not isinstance(p, str)]


def test_batches_are_cut_before_the_byte_limit_and_every_job_goes_once(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    queue(service, 4)
    sizes = [len(request_json(p)) for p in prepared(service)]
    limit = body_size(3, 3 * max(sizes))  # room for any 3 requests
    assert body_size(4, 4 * min(sizes)) > limit  # and never for 4
    monkeypatch.setattr(submit, "MAX_BATCH_BYTES", limit)
    monkeypatch.setattr(submit, "CLAIM_CHUNK", 2)  # a batch fills across chunks, and a chunk splits
    output = ok(service.cli("submit"))

    assert [len(b.requests) for b in service.anthropic.batches.values()] == [3, 3, 2]
    assert "submitted 8, batches 3" in output
    assert max(create_sizes(service)) <= limit
    prefix = deployment_prefix_of(service)
    custom_ids = [r["custom_id"] for b in service.anthropic.batches.values() for r in b.requests]
    submitted = jobs(service.database_url)
    assert custom_ids == [f"{prefix}-{j.id}" for j in submitted]
    assert {j.state for j in submitted} == {"submitted"} and {j.attempts for j in submitted} == {1}
    rows = batches(service.database_url)
    assert [b.request_count for b in rows] == [3, 3, 2]
    assert [sum(j.batch_id == b.id for j in submitted) for b in rows] == [3, 3, 2]
    assert all(j.model == "claude-opus-4-7" and j.omitted == "[]" and j.reserved_micro_usd for j in submitted)
    for job in submitted:
        assert [(e.from_state, e.to_state) for e in events(service.database_url, job.id)] == [
            (None, "queued"), ("queued", "submitting"), ("submitting", "submitted")]


def test_batches_are_cut_at_the_request_limit(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    queue(service, 3)
    monkeypatch.setattr(submit, "MAX_BATCH_REQUESTS", 4)
    ok(service.cli("submit"))
    assert sorted(len(b.requests) for b in service.anthropic.batches.values()) == [2, 4]


def test_the_create_body_holds_exactly_the_prepared_requests(service: Service) -> None:
    queue(service, 2)
    expected = prepared(service)
    ok(service.cli("submit"))
    (batch,) = service.anthropic.batches.values()
    assert batch.requests == [p.request for p in expected]
    assert create_sizes(service) == [body_size(len(expected), sum(len(request_json(p)) for p in expected))]
    assert "Check the web templates." in json.dumps(batch.requests)  # the repository's own rules were applied


def test_the_spool_knows_its_exact_size() -> None:
    spool = RequestSpool()
    entries = [json.dumps({"custom_id": f"rv-{i}", "params": {"text": "caf\u00e9 " * i}},
                          ensure_ascii=False).encode() for i in range(3)]
    predicted = body_size(len(entries), sum(map(len, entries)))
    assert spool.size_with(len(entries), sum(map(len, entries))) == predicted
    for entry in entries:
        spool.add(entry)
    body = spool.body().read()
    spool.close()
    assert len(body) == spool.size == predicted
    assert json.loads(body) == {"requests": [json.loads(e) for e in entries]}


def deployment_prefix_of(service: Service) -> str:
    engine = make_engine(service.database_url)
    try:
        with session_factory(engine)() as session:
            return deployment_prefix(session)
    finally:
        engine.dispose()
