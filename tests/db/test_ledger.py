"""The ledger from recorded usage: the reference arithmetic through `reviewer costs`, and results
whose custom_id names no job of the batch are ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from reviewer.batches import ResultLine
from reviewer.cli import cli
from reviewer.config import settings_from_mapping
from reviewer.cost import Usage
from reviewer.db import transaction
from reviewer.models import Batch, Result, ReviewJob
from reviewer.poll import _store_chunk
from reviewer.report import Count, StageReport
from reviewer.runtime import Runtime

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def runtime(database_url: str) -> Runtime:
    settings = settings_from_mapping({"database_url": database_url, "repositories": [{"name": "acme/api"}]},
                                     "test.yml", {}, Path("."))
    rt = Runtime(settings, clock=lambda: NOW)
    rt.prepare_database(migrate=True)
    return rt


def submitted_job(rt: Runtime, number: int) -> tuple[int, int]:
    with transaction(rt.sessions) as session:
        batch = Batch(state="submitted", anthropic_id=f"msgbatch_{number}", request_count=1, created_at=NOW)
        session.add(batch)
        session.flush()
        job = ReviewJob(repository="acme/api", pr_number=number, head_sha=f"{number:040d}", diff="d",
                        state="submitted", batch_id=batch.id, model="claude-opus-4-7", attempts=1,
                        created_at=NOW, updated_at=NOW)
        session.add(job)
        session.flush()
        return job.id, batch.id


def test_reference_workload_from_recorded_usage(database_url: str, tmp_path: Path) -> None:
    rt = runtime(database_url)
    report = StageReport("poll")
    with transaction(rt.sessions) as session:
        batch = Batch(state="submitted", anthropic_id="msgbatch_ref", request_count=5000, created_at=NOW)
        session.add(batch)
        session.flush()
        session.add_all(ReviewJob(id=n, repository="acme/api", pr_number=n, head_sha=f"{n:040d}", diff="d",
                                  state="submitted", batch_id=batch.id, model="claude-opus-4-7", attempts=1,
                                  created_at=NOW, updated_at=NOW) for n in range(1, 5001))
        session.flush()
        _store_chunk(rt, session, batch.id, [
            ResultLine(f"job-{n}", "succeeded", "claude-opus-4-7", "end_turn", "Fine.", "[]", Usage(20_000, 5_000))
            for n in range(1, 5001)], report)
    assert report.counts[Count.RESULTS_SUCCEEDED] == 5000  # an old-style batch (job-<id>, no prefix) completes
    config = tmp_path / "reviewer.yml"
    config.write_text(f"database_url: {database_url}\nrepositories: [{{name: acme/api}}]\n")
    output = CliRunner().invoke(cli, ["--config", str(config), "costs", "--by", "repository", "--by", "week"],
                                env={"REVIEWER_DATABASE_URL": ""}).output
    assert "acme/api" in output and "2026-W48" in output
    assert output.count("$562.50") >= 2 and output.count("$1,125.00") >= 2
    assert "100,000,000" in output and "25,000,000" in output  # tokens
    rt.close()


def test_result_for_unknown_custom_id_is_ignored(database_url: str) -> None:
    rt = runtime(database_url)
    _, batch_id = submitted_job(rt, 1)
    other_job, _ = submitted_job(rt, 2)
    report = StageReport("poll")
    with transaction(rt.sessions) as session:
        _store_chunk(rt, session, batch_id, [
            ResultLine(custom, "succeeded", "claude-opus-4-7", "end_turn", "x", "[]", Usage(1, 1))
            for custom in ("job-999", "not-ours", f"job-{other_job}")], report)
    assert report.counts == {"unknown results ignored": 2, "foreign results ignored": 1}  # not-ours: not "job-N"
    with rt.sessions() as session:
        assert session.query(Result).count() == 0
        assert {j.state for j in session.query(ReviewJob)} == {"submitted"}
    rt.close()


# groupings, formats and the operator's numbers on a mixed ledger ------------------------------------------

OPUS, SONNET = "claude-opus-4-7", "claude-sonnet-4-6"
DAY_1 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 2026-W48, November
DAY_2 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 2026-W49, November
DAY_3 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 2026-W49, December


def _batch(session, name: str, minutes: int, operator_cancel: bool = False) -> int:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    batch = Batch(state="ended", anthropic_id=name, request_count=3, created_at=DAY_1, submitted_at=DAY_1,
                  ended_at=DAY_1 + timedelta(minutes=minutes),
                  cancel_requested_at=DAY_1 if operator_cancel else None)
    session.add(batch)
    session.flush()
    return batch.id


def _result(rt: Runtime, session, repo: str, number: int, batch_id: int | None, kind: str,  # type: ignore[no-untyped-def]
            at: datetime, model: str = OPUS, usage: Usage | None = None, batch: bool = True) -> int:
    from reviewer.cost import cost_of

    job = ReviewJob(repository=repo, pr_number=number, head_sha=f"{number}{at:%d}".ljust(40, "0"), diff="d",
                    state="posted", batch_id=batch_id, model=model, attempts=1, created_at=at, updated_at=at)
    session.add(job)
    session.flush()
    row = Result(batch_id=batch_id, job_id=job.id, custom_id=f"job-{job.id}", result_type=kind, is_batch=batch,
                 model=model, created_at=at)
    if kind == "succeeded" and usage is not None:
        cost = cost_of(usage, rt.settings.prices.price(model), batch=batch)
        row.input_tokens, row.output_tokens = usage.input_tokens, usage.output_tokens
        row.cache_creation_input_tokens = usage.cache_creation_input_tokens
        row.cache_read_input_tokens = usage.cache_read_input_tokens
        row.cache_creation_1h_tokens = usage.cache_creation_1h_tokens
        row.cost_micro_usd, row.standard_cost_micro_usd = cost.charged_micro_usd, cost.standard_micro_usd
        row.cache_saved_micro_usd = cost.cache_saved_micro_usd
    session.add(row)
    return job.id


def mixed_ledger(database_url: str, tmp_path: Path) -> Path:
    """Two repositories, two models, three days over two weeks and two months, a cache read, a 1h cache
    write, an express (standard-price) result, not-billed lines, and an operator-canceled batch."""
    rt = runtime(database_url)
    with transaction(rt.sessions) as session:
        b1, b2 = _batch(session, "msgbatch_b1", 10), _batch(session, "msgbatch_b2", 60)
        b3 = _batch(session, "msgbatch_b3", 120, operator_cancel=True)
        _result(rt, session, "acme/api", 9, b1, "succeeded", DAY_1, usage=Usage(20_000, 5_000))
        _result(rt, session, "acme/api", 10, b1, "succeeded", DAY_2, usage=Usage(16_000, 5_000, 0, 4_000))
        _result(rt, session, "acme/web", 7, b2, "succeeded", DAY_3, SONNET,
                Usage(16_000, 3_000, 4_000, 0, 0, 4_000))
        _result(rt, session, "acme/web", 8, None, "succeeded", DAY_3, usage=Usage(10_000, 1_000), batch=False)
        _result(rt, session, "acme/web", 11, b2, "errored", DAY_3)
        _result(rt, session, "acme/web", 12, b2, "expired", DAY_3)
        _result(rt, session, "acme/api", 13, b3, "canceled", DAY_2)
    rt.close()
    config = tmp_path / "reviewer.yml"
    config.write_text(f"database_url: {database_url}\nrepositories: [{{name: acme/api}}, {{name: acme/web}}]\n")
    return config


ALL_GROUPINGS = ["review", "pr", "repository", "model", "day", "week", "month"]
NUMBERS = ["reviews", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens",
           "cost_micro_usd", "standard_micro_usd", "saved_micro_usd", "cache_saved_micro_usd"]


def costs(config: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(config), "costs", *args], env={"REVIEWER_DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    return result.output


def by_args() -> list[str]:
    return [arg for by in ALL_GROUPINGS for arg in ("--by", by)]


def test_costs_csv_groups_add_up_to_the_totals(database_url: str, tmp_path: Path) -> None:
    import csv
    import io
    from decimal import Decimal

    config = mixed_ledger(database_url, tmp_path)
    rows = list(csv.DictReader(io.StringIO(costs(config, *by_args(), "--format", "csv"))))
    assert {r["by"] for r in rows} == set(ALL_GROUPINGS)
    totals = {r["by"]: r for r in rows if r["row"] == "total"}
    for by in ALL_GROUPINGS:
        groups = [r for r in rows if r["by"] == by and r["row"] == "group"]
        for field in NUMBERS:
            assert sum(int(r[field]) for r in groups) == int(totals[by][field]), (by, field)
    total = totals["week"]
    assert total["reviews"] == "4" and total["cache_read_tokens"] == "4000" and total["cache_write_tokens"] == "4000"
    assert Decimal(total["cost_usd"]) * 1_000_000 == int(total["cost_micro_usd"])  # exact dollar strings
    keys = {by: [r["key"] for r in rows if r["by"] == by and r["row"] == "group"] for by in ALL_GROUPINGS}
    assert keys["week"] == ["2026-W48", "2026-W49"] and keys["month"] == ["2026-11", "2026-12"]
    assert keys["day"] == ["2026-11-23", "2026-11-30", "2026-12-01"]
    assert keys["pr"] == ["acme/api#9", "acme/api#10", "acme/web#7", "acme/web#8"]  # numbers sort as numbers
    assert keys["model"] == [OPUS, SONNET] and keys["repository"] == ["acme/api", "acme/web"]


def test_costs_json_and_the_operators_numbers(database_url: str, tmp_path: Path) -> None:
    import json

    config = mixed_ledger(database_url, tmp_path)
    document = json.loads(costs(config, "--by", "review", "--by", "model", "--format", "json"))
    assert list(document["groups"]) == ["review", "model"]
    express = next(r for r in document["groups"]["review"] if "acme/web#8@" in r["key"])
    assert express["saved_micro_usd"] == 0 and express["cost_micro_usd"] == express["standard_micro_usd"] > 0
    for rows in document["groups"].values():
        for field in NUMBERS:
            assert sum(r[field] for r in rows) == document["total"][field]
    total = document["total"]
    assert total["saved_micro_usd"] == total["standard_micro_usd"] - total["cost_micro_usd"] > 0
    ops = document["operations"]
    assert ops["succeeded_requests"] == 4
    assert ops["cost_per_succeeded_request_micro_usd"] == round(total["cost_micro_usd"] / 4)
    assert ops["submission_to_end_seconds"] == {"batches": 3, "median": 3600.0, "p95": 7200.0}
    assert (ops["result_lines"], ops["not_billed_lines"]) == (6, 3) and ops["error_rate"] == 0.5
    worst = ops["worst_batches"]
    assert [(b["anthropic_id"], b["canceled_by_operator"]) for b in worst] == [
        ("msgbatch_b3", True), ("msgbatch_b2", False)]
    assert worst[1]["counts"] == {"succeeded": 1, "errored": 1, "expired": 1}


def test_costs_table_shows_every_grouping_and_the_operations(database_url: str, tmp_path: Path) -> None:
    config = mixed_ledger(database_url, tmp_path)
    output = costs(config, *by_args())
    for by in ALL_GROUPINGS:
        assert f"by {by}" in output
    assert "acme/api#10@" in output and "2026-W49" in output and "2026-12" in output and SONNET in output
    assert "cost per succeeded request" in output and "median 1h 00m, p95 2h 00m over 3 ended batches" in output
    assert "50.00% of 6 result lines" in output
    assert "msgbatch_b3 (local 3): 100.00% of 1 (canceled 1; canceled by an operator)" in output
    default = costs(config)
    assert "by review" in default and "by repository" in default and "by week" in default and "by day" not in default


def test_costs_of_an_empty_database(database_url: str, tmp_path: Path) -> None:
    import json

    runtime(database_url).close()
    config = tmp_path / "reviewer.yml"
    config.write_text(f"database_url: {database_url}\nrepositories: [{{name: acme/api}}]\n")
    assert "nothing billed yet" in costs(config)
    document = json.loads(costs(config, "--format", "json"))
    assert document["total"]["reviews"] == 0 and document["operations"]["error_rate"] is None
