"""The `reviewer` command line. Each command parses its options, runs one stage and prints its
report. `ReviewerError`s, and the database's own failures (missing, unreachable, read-only, full, locked:
`db.DATABASE_ERRORS`), become one `error: ...` line on stderr and exit status 1; anything else is a bug
and keeps its traceback.

Each command imports what it uses when it runs: `reviewer --help`, `status` and `costs` load neither
the SDKs (anthropic, PyGithub), nor the scheduler, Jinja2, Alembic or the emulators, so they answer at
once (tests/unit/test_cli_imports.py; bench/cli_start.py times them).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from reviewer.choices import DEFAULT_GROUPINGS, FORMATS, GROUPINGS, LIST_LIMIT
from reviewer.errors import ReviewerError

if TYPE_CHECKING:
    from reviewer.config import Settings
    from reviewer.report import StageReport
    from reviewer.runtime import Runtime


class _ReviewerFailure(click.ClickException):
    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        from reviewer.db import DATABASE_ERRORS, database_error

        try:
            return super().invoke(ctx)
        except ReviewerError as exc:
            raise _ReviewerFailure(str(exc)) from None
        except DATABASE_ERRORS as exc:  # the database is missing, read-only, full, locked or unreachable
            settings = (ctx.obj or {}).get("settings")
            raise _ReviewerFailure(str(database_error(exc, settings.database_url if settings else None))) from None


def _settings(ctx: click.Context) -> Settings:
    from reviewer.config import load_settings
    from reviewer.logs import remember_settings_secrets

    obj = ctx.find_root().obj
    if "settings" not in obj:
        obj["settings"] = load_settings(obj["config"])
        remember_settings_secrets(obj["settings"])
    return obj["settings"]  # type: ignore[no-any-return]


def _runtime(ctx: click.Context, migrate: bool = False) -> Runtime:
    from reviewer.runtime import Runtime

    rt = Runtime(_settings(ctx))
    ctx.call_on_close(rt.close)
    rt.prepare_database(migrate)
    return rt


def _print(report: StageReport) -> None:
    click.echo(report.lines())
    for line in report.errors:
        click.echo(f"  problem: {line}", err=True)


def _exit_on_errors(*reports: StageReport) -> None:
    if any(r.errors for r in reports):
        sys.exit(1)


@click.group(cls=_Group)
@click.option("--config", "config", default=None, metavar="PATH",
              help="Config file (default: $REVIEWER_CONFIG or ./reviewer.yml).")
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default="text", type=click.Choice(["text", "json"]),
              help="json: one object per line (ts, level, logger, message, extra fields, exc).")
@click.option("--log-prompts", is_flag=True,
              help="With --log-level debug, also log the SDKs' HTTP bodies: prompts, diffs and reviews "
                   "(private code; off by default).")
@click.version_option(package_name="reviewer")
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_level: str, log_format: str, log_prompts: bool) -> None:
    """Batch-first AI code review for GitHub: collect pull requests, review them through the Anthropic
    Message Batches API at half price, post the reviews, and account for every dollar."""
    from reviewer.logs import configure_logging

    configure_logging(log_level, log_format, log_prompts=log_prompts)  # secrets are redacted from every record
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@cli.group("config")
def config_group() -> None:
    """The config file."""


@config_group.command("example")
def config_example() -> None:
    """Print a commented example config (`reviewer config example > reviewer.yml`, then edit it)."""
    from reviewer.config import example_config

    click.echo(example_config(), nl=False)


@cli.group()
def db() -> None:
    """Database schema: migrations are the only way it changes."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending migrations (a SQLite file is backed up first)."""
    from reviewer.db import make_engine
    from reviewer.runtime import bring_to_head

    engine = make_engine(_settings(ctx).database_url)
    try:
        before, after = bring_to_head(engine, migrate=True)
    finally:
        engine.dispose()  # else its pooled connection is left open (a ResourceWarning on PostgreSQL)
    click.echo(f"database at {after}" + ("" if before == after else f" (was {before or 'empty'})"))


@db.command("check")
@click.pass_context
def db_check(ctx: click.Context) -> None:
    """Fail unless the database is at head and the models match the migrations."""
    from alembic import command
    from alembic.util.exc import AutogenerateDiffsDetected

    from reviewer.db import make_engine
    from reviewer.migrate import alembic_config, check_schema_current

    engine = make_engine(_settings(ctx).database_url)
    try:
        check_schema_current(engine)
        command.check(alembic_config(engine))
    except AutogenerateDiffsDetected as exc:
        raise ReviewerError(f"the models differ from the migrations: {exc}", "write a migration") from None
    finally:
        engine.dispose()
    click.echo("database schema is current and matches the models")


@cli.command()
@click.option("--repo", "repos", multiple=True, help="Only this repository (repeatable).")
@click.pass_context
def collect(ctx: click.Context, repos: tuple[str, ...]) -> None:
    """Queue a review job for every new head commit of every open pull request."""
    from reviewer.collect import collect_pulls

    report = collect_pulls(_runtime(ctx), repos or None)
    _print(report)
    _exit_on_errors(report)


@cli.command()
@click.option("--repo", "repos", multiple=True, help="Only this repository (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent and its estimated cost; send nothing.")
@click.pass_context
def submit(ctx: click.Context, repos: tuple[str, ...], dry_run: bool) -> None:
    """Send queued jobs as Anthropic Message Batches now, whatever the schedule."""
    from reviewer.estimate import estimate_queued
    from reviewer.submit import submit_queued

    stage = estimate_queued if dry_run else submit_queued
    report = stage(_runtime(ctx), repos or None)
    _print(report)
    _exit_on_errors(report)


@cli.command()
@click.option("--wait", is_flag=True, help="Keep polling until every batch has ended.")
@click.pass_context
def poll(ctx: click.Context, wait: bool) -> None:
    """Check submitted batches and store the results of those that ended."""
    from reviewer.pipeline import wait_for_batches
    from reviewer.poll import poll_batches

    rt = _runtime(ctx)
    reports = wait_for_batches(rt, click.echo) if wait else [poll_batches(rt)]
    _print(reports[-1])
    _exit_on_errors(*reports)


@cli.command()
@click.pass_context
def post(ctx: click.Context) -> None:
    """Post answered reviews (skipping pull requests that closed or moved on)."""
    from reviewer.post import post_answered

    report = post_answered(_runtime(ctx))
    _print(report)
    _exit_on_errors(report)


@cli.command()
@click.pass_context
def cycle(ctx: click.Context) -> None:
    """One pass of everything (collect, submit, wait for the batches, post); for cron or CI.
    SIGTERM stops it between steps, or after a few seconds even inside a call that hangs; the next cycle
    picks up where it left off."""
    from reviewer.pipeline import run_cycle
    from reviewer.shutdown import Shutdown

    with Shutdown() as shutdown:
        reports = run_cycle(_runtime(ctx, migrate=True), click.echo, shutdown.stop)
    if shutdown.stop.is_set():
        click.echo("stopped on request; batches in flight are polled and posted by the next run")
    for report in reports:
        for line in report.errors:
            click.echo(f"  problem: {line}", err=True)
    _exit_on_errors(*reports)


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the service: collect, submit on each repository's schedule, poll and post; stop on SIGTERM."""
    from reviewer.scheduler import run_service

    run_service(_runtime(ctx, migrate=True))


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """The queue and the batches at a glance, with the reasons for skipped, stale and failed jobs."""
    from reviewer.reports import format_status
    from reviewer.schedules import next_submissions

    rt = _runtime(ctx)
    database = rt.engine.url.render_as_string(hide_password=True)  # the resolved path; a password as ***
    with rt.sessions() as session:
        click.echo(format_status(session, rt.clock(), next_submissions(rt), database))


@cli.command()
@click.option("--by", "groupings", multiple=True, default=DEFAULT_GROUPINGS, type=click.Choice(GROUPINGS),
              help=f"Grouping (repeatable; default: {', '.join(DEFAULT_GROUPINGS)}).")
@click.option("--format", "output_format", default=FORMATS[0], type=click.Choice(FORMATS),
              help="table for people; csv and json carry exact micro-USD beside dollar strings.")
@click.pass_context
def costs(ctx: click.Context, groupings: tuple[str, ...], output_format: str) -> None:
    """What the reviews cost, beside what the standard API would have charged, and the operator's numbers:
    cost per succeeded request, time from submission to batch end, error rate per batch."""
    from reviewer.ledger import format_ledger, read_ledger

    rt = _runtime(ctx)
    with rt.sessions() as session:
        ledger = read_ledger(session, groupings)
    click.echo(format_ledger(ledger, output_format))


@cli.command()
@click.argument("job_id", type=int)
@click.pass_context
def explain(ctx: click.Context, job_id: int) -> None:
    """Every state change of one job, with its reason."""
    from reviewer.reports import format_explain

    rt = _runtime(ctx)
    with rt.sessions() as session:
        text = format_explain(session, job_id)
    if text is None:
        raise ReviewerError(f"no job {job_id}", "see `reviewer status`")
    click.echo(text)


@cli.group("batches", invoke_without_command=True)
@click.option("--limit", default=LIST_LIMIT, show_default=True, help="How many of the newest batches to list.")
@click.pass_context
def batches_group(ctx: click.Context, limit: int) -> None:
    """The Message Batches, newest first: state, requests, result counts and cost. `reviewer batches
    cancel ID` cancels one."""
    if ctx.invoked_subcommand is not None:
        return
    from reviewer.batchops import format_batches, list_batches

    rt = _runtime(ctx)
    with rt.sessions() as session:
        click.echo(format_batches(list_batches(session, limit)))


@batches_group.command("cancel")
@click.argument("batch_id")
@click.pass_context
def batches_cancel(ctx: click.Context, batch_id: str) -> None:
    """Cancel a running batch (Anthropic id or local id); its unfinished requests are queued again when it
    ends, without counting an attempt."""
    from reviewer.batchops import cancel_batch

    _print(cancel_batch(_runtime(ctx), batch_id))


@cli.command()
@click.option("--dir", "workdir", default=None, type=click.Path(file_okay=False),
              help="Keep the demo's config and SQLite database here (default: a temporary folder).")
def demo(workdir: str | None) -> None:
    """Run the whole pipeline against local GitHub and Anthropic emulators on SQLite, then show the
    posted reviews and what they cost."""
    from reviewer.demo import run_demo

    run_demo(workdir, click.echo)


def main() -> None:
    cli(prog_name="reviewer")
