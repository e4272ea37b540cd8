"""The ledger from recorded usage: the reference arithmetic through `reviewer costs`, and results
whose custom_id names no job of the batch are ignored."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner

from reviewer.batches import ResultLine
from reviewer.cli import cli
from reviewer.config import settings_from_mapping
from reviewer.cost import Usage
from reviewer.db import transaction
from reviewer.models import Batch, Result, ReviewJob
from reviewer.poll import _store_chunk
from reviewer.runtime import Runtime, StageReport

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


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
    assert report.counts["results succeeded"] == 5000
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
    job_id, batch_id = submitted_job(rt, 1)
    other_job, other_batch = submitted_job(rt, 2)
    report = StageReport("poll")
    with transaction(rt.sessions) as session:
        _store_chunk(rt, session, batch_id, [
            ResultLine(custom, "succeeded", "claude-opus-4-7", "end_turn", "x", "[]", Usage(1, 1))
            for custom in ("job-999", "not-ours", f"job-{other_job}")], report)
    assert report.counts == {"unknown results ignored": 3}
    with rt.sessions() as session:
        assert session.query(Result).count() == 0
        assert {j.state for j in session.query(ReviewJob)} == {"submitted"}
    rt.close()
