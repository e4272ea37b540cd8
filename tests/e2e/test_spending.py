"""Spending end to end: budgets that hold (also when two submitters race on PostgreSQL), prompt caching
recorded to the cent, the express lane at the standard price, and the batch queue limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from reviewer.cost import Usage, cost_of, load_price_table
from reviewer.emulators.anthropic import AnthropicEmulator
from tests.conftest import ANTHROPIC_KEY, Service, write_service
from tests.e2e.helpers import REPO, diff_for, jobs, ok, own_reviews, results

PRICES = load_price_table()


def in_flight_reserved(database_url: str) -> int:
    return sum(j.reserved_micro_usd for j in jobs(database_url) if j.state in ("submitting", "submitted"))


def test_jobs_over_the_monthly_budget_wait(service: Service) -> None:
    for i in range(4):
        service.github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i))
    ok(service.cli("collect"))
    # max_tokens 2048 on Opus 4.7 as a batch: output alone reserves 2048 * 12.5 = 25,600 µ$ a job.
    service.rewrite(budget={"monthly_usd": 0.06})
    output = ok(service.cli("submit"))
    assert "submitted 2" in output and "waiting for budget 2" in output
    assert "over the organisation monthly budget of $0.06" in output
    assert "organisation budget:" in output and "committed this month" in output  # the 80% warning
    assert in_flight_reserved(service.database_url) <= 60_000
    ok(service.cli("poll"))
    # the answers cost far less than their worst case: the reservations are released and one more fits
    output = ok(service.cli("submit"))
    assert "submitted 1" in output and "waiting for budget 1" in output
    spent = sum(r.cost_micro_usd for r in results(service.database_url))
    assert spent + in_flight_reserved(service.database_url) <= 60_000


def test_per_repository_budget_and_skip_policy(service: Service) -> None:
    service.github.open_pull(REPO, title="PR", diff=diff_for(1))
    service.rewrite(repositories=[{"name": REPO, "monthly_budget_usd": 0.01}], budget={"over_budget": "skip"})
    ok(service.cli("cycle"))
    (job,) = jobs(service.database_url)
    assert job.state == "skipped" and "acme/api monthly budget of $0.01" in (job.reason or "")
    assert service.anthropic.batches == {}


@pytest.mark.postgres
@pytest.mark.slow
def test_two_submitters_racing_never_pass_the_budget(tmp_path: Path, postgres_admin, github, anthropic_api) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import drop_postgres_database, new_postgres_database

    name, url = new_postgres_database(postgres_admin)
    try:
        github.add_repo(REPO)
        service = write_service(tmp_path, url, github, anthropic_api, [{"name": REPO}])
        assert service.cli("db", "upgrade").exit_code == 0
        for i in range(30):
            github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i))
        ok(service.cli("collect"))
        budget_micro = 260_000  # room for about nine worst cases of ~27,000 µ$
        service.rewrite(budget={"monthly_usd": budget_micro / 1e6})
        racers = [service.spawn("submit") for _ in range(3)]
        for racer in racers:
            racer.communicate(timeout=120)
        assert all(r.returncode in (0, 1) for r in racers)
        submitted = [j for j in jobs(url) if j.state == "submitted"]
        assert 5 <= len(submitted) <= 10
        assert sum(j.reserved_micro_usd for j in submitted) <= budget_micro
        assert sum(len(b.requests) for b in anthropic_api.batches.values()) == len(submitted)
    finally:
        drop_postgres_database(postgres_admin, name)


def test_express_label_reviews_at_once_at_the_standard_price(service: Service) -> None:
    number = service.github.open_pull(REPO, title="Hotfix", diff=diff_for(1), labels=["review-now"])
    later = service.github.open_pull(REPO, title="Normal", diff=diff_for(2))
    ok(service.cli("collect"))
    output = ok(service.cli("cycle"))
    assert "standard API at once" in output
    (row,) = [r for r in results(service.database_url) if r.batch_id is None]
    assert row.is_batch is False and row.cost_micro_usd == row.standard_cost_micro_usd > 0
    assert len(service.anthropic.sync_messages) == 1
    assert len(own_reviews(service.github, REPO, number)) == 1 and len(own_reviews(service.github, REPO, later)) == 1
    assert "standard API" in own_reviews(service.github, REPO, number)[0]["body"]
    assert sum(len(b.requests) for b in service.anthropic.batches.values()) == 1  # only the other PR


def test_express_lane_respects_the_budget(service: Service) -> None:
    service.github.open_pull(REPO, title="Hotfix", diff=diff_for(1), labels=["review-now"])
    service.rewrite(budget={"monthly_usd": 0.03})  # the batch worst case fits, the standard one does not
    output = ok(service.cli("cycle"))
    assert "express review not sent" in output
    assert service.anthropic.sync_messages == [] and len(service.anthropic.batches) == 1


def test_prompt_caching_is_recorded_to_the_cent(tmp_path: Path, database_url: str, github) -> None:  # type: ignore[no-untyped-def]
    github.add_repo(REPO)
    with AnthropicEmulator(api_key=ANTHROPIC_KEY, polls_to_end=1, cache_min_tokens={"claude-opus-4-7": 256}) as api:
        service = write_service(tmp_path, database_url, github, api,
                                [{"name": REPO, "prompt_caching": True, "cache_ttl": "1h"}])
        for i in range(3):
            github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i))
        ok(service.cli("cycle"))
        (batch,) = api.batches.values()
        emulated = {r["custom_id"]: r["result"]["message"]["usage"] for r in batch.results}
    rows = results(service.database_url)
    assert sum(r.cache_creation_1h_tokens or 0 for r in rows) > 0 and sum(r.cache_read_input_tokens for r in rows) > 0
    price = PRICES.price("claude-opus-4-7")
    for row in rows:
        usage = emulated[row.custom_id]
        expected = cost_of(Usage(usage["input_tokens"], usage["output_tokens"], usage["cache_creation_input_tokens"],
                                 usage["cache_read_input_tokens"], usage["cache_creation"]["ephemeral_5m_input_tokens"],
                                 usage["cache_creation"]["ephemeral_1h_input_tokens"]), price)
        assert row.cost_micro_usd == expected.charged_micro_usd
        assert row.standard_cost_micro_usd == expected.standard_micro_usd
    assert sum(r.cache_saved_micro_usd for r in rows) > 0  # reads save more than the first write costs
    costs = ok(service.cli("costs", "--by", "repository"))
    assert "acme/api" in costs


def test_batch_queue_limit_makes_the_rest_wait(service: Service) -> None:
    for i in range(3):
        service.github.open_pull(REPO, title=f"PR {i}", diff=diff_for(i))
    service.rewrite(anthropic={"max_queued_requests": 2})
    ok(service.cli("collect"))
    output = ok(service.cli("submit"))
    assert "submitted 2" in output and "waiting for queue room 1" in output
    ok(service.cli("poll"))
    service.anthropic.set_queue_limit(0)
    output = ok(service.cli("submit"))
    assert "wait for the next submission" in output
    assert [j.state for j in jobs(service.database_url)].count("queued") == 1
    service.anthropic.set_queue_limit(None)
    ok(service.cli("cycle"))
    assert {j.state for j in jobs(service.database_url)} == {"posted"}

