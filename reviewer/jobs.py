"""A review job outside any stage: what every stage needs to know about one, so that no stage imports
another.

- its name on the wire (`custom_id`: `rv<deployment id>-<job id>`) and back (`job_id_from`): the
  deployment id is this database's own (random, made with the schema), so a result of another deployment
  on the same Anthropic key never maps to a job of this one; batches created before deployment ids carry
  `job-<id>` and are read with that prefix;
- its effective settings (the central ones with the repository rules it was collected with);
- its request (`prepare_request`: trimmed diff, rendered prompt, worst case to reserve) or the reason
  it is not sent (too large; every file ignored; nothing but renames, mode changes or empty files, which
  would be billed for nothing);
- its result rows (`result_row`, priced), the latest succeeded one, and the jobs of a batch;
- the operator's cancel of its batch (`canceled_by_operator`, `requeue_canceled`).

Reads and row-building only; the state of a job is written by `queue.transition()` alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewer.batches import ResultLine
from reviewer.budget import worst_case
from reviewer.config import RepoSettings, Settings
from reviewer.cost import Usage, cost_of
from reviewer.errors import ConfigError
from reviewer.models import Batch, Result, ResultType, ReviewJob
from reviewer.queue import State, transition
from reviewer.review.diffs import changed_files, number_new_side, without_content
from reviewer.review.parse import REVIEW_TOOL, TOOL_NAME
from reviewer.review.paths import shown
from reviewer.review.render import RenderedPrompt, render_prompt
from reviewer.review.trim import DEFAULT_IGNORES, FittedDiff, Ignores, compile_ignores, estimate_tokens, fit_diff
from reviewer.rules import REPO_CONFIG_PATH, apply_rules, rules_from_json

log = logging.getLogger("reviewer.jobs")
PROMPT_OVERHEAD_TOKENS = 8_000  # system prompt, tool schema and PR metadata around the diff
LEGACY_PREFIX = "job"  # the custom_id prefix of batches created before deployment ids


# --- identity -------------------------------------------------------------------------------------


def custom_id(prefix: str, job_id: int) -> str:
    return f"{prefix}-{job_id}"


def job_id_from(custom: str, prefix: str) -> int | None:
    """The job a custom_id names, or None when it is not of the form `<prefix>-<number>` (another
    deployment's request, or not one of ours at all)."""
    head, _, number = custom.rpartition("-")
    return int(number) if head == prefix and number.isdigit() and number[0] != "0" else None


# --- the request ----------------------------------------------------------------------------------


def effective_settings(settings: Settings, job: ReviewJob) -> RepoSettings:
    """The repository's central settings with the rules it had on its default branch at collection."""
    repo = settings.repo(job.repository)
    if not job.repo_rules:
        return repo
    return apply_rules(repo, rules_from_json(job.repo_rules), settings, f"{job.repository}:{REPO_CONFIG_PATH}")


def template_variables(job: ReviewJob, repo: RepoSettings, fitted: FittedDiff) -> dict[str, Any]:
    return {
        "repo": job.repository,
        "pr": {"number": job.pr_number, "title": job.title, "author": job.author, "body": job.body,
               "url": job.url, "base_ref": job.base_ref, "head_ref": job.head_ref, "head_sha": job.head_sha,
               "labels": [label for label in job.labels.split(",") if label]},
        "diff": "\n".join(fitted.numbered) if fitted.numbered else number_new_side(fitted.diff),
        "files": [shown(path) for path in fitted.kept or changed_files(fitted.diff)],
        "omitted": [{"path": shown(o.path), "reason": o.reason} for o in fitted.omitted],
        "unlisted_files": job.unlisted_files or 0,
        "instructions": repo.instructions,
        "model": repo.model,
        "incremental": job.review_base_sha is not None,
        "since_sha": job.review_base_sha or "",
        "previous_summary": job.previous_summary or "",
    }


@dataclass(frozen=True)
class Prepared:
    """A job's batch request, and what the stages record about it."""

    request: dict[str, Any]
    repository: str
    model: str
    omitted: str  # JSON [[path, reason], ...]: the files the model will not see, and why
    input_tokens: int  # an estimate (3.5 characters a token); the API's count comes with the result
    reserved: int  # the batch-priced worst case, micro-USD, held against the budgets while in flight


def prepare_request(job: ReviewJob, settings: Settings, prefix: str) -> Prepared | str:
    """The batch request for a job (its custom_id made with `prefix`), or the reason it is skipped.
    For many jobs in one run, `RequestBuilder` does the per-repository work once."""
    return RequestBuilder(settings, prefix).prepare(job)


def request_json(prepared: Prepared) -> bytes:
    """The request as it goes into a create body: compact UTF-8 JSON, as the SDK would send it. The tool
    schema and tool choice, the same objects in every request, are encoded once and spliced in."""
    params = prepared.request["params"]
    if params.get("tools") is not _TOOLS or params.get("tool_choice") is not _TOOL_CHOICE:
        return _JSON.encode(prepared.request).encode()
    own = {key: value for key, value in params.items() if key not in _SHARED_KEYS}
    head = _JSON.encode({"custom_id": prepared.request["custom_id"], "params": own})
    return (head[:-2] + _SHARED_JSON).encode()  # head ends with the "}}" that close params and the request


@dataclass(frozen=True)
class _RepoWork:
    """What every job of one repository (with one set of repository rules) shares."""

    repo: RepoSettings
    ignores: Ignores
    budget_tokens: int


class RequestBuilder:
    """`prepare_request` for the many jobs of one run. What is the same for every job of a repository
    (its rules merged over the central settings and validated, its ignore patterns compiled, its token
    room) is worked out once per repository and rules, and its failure (a ConfigError) remembered."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix
        self._work: dict[tuple[str, str | None], _RepoWork | ConfigError] = {}

    def prepare(self, job: ReviewJob) -> Prepared | str:
        work = self._repo_work(job)
        repo = work.repo
        fitted = fit_diff(job.review_diff or job.diff, ignore=work.ignores, budget_tokens=work.budget_tokens,
                          hard_limit_tokens=repo.hard_limit_tokens)
        reason = _not_worth_a_request(repo, fitted)
        if reason is not None:
            return reason
        prompt = render_prompt(repo.template, template_variables(job, repo, fitted), self.settings.prompts_dir)
        tokens = _TOOL_TOKENS + estimate_tokens(prompt.system) + estimate_tokens(prompt.user)
        omitted = json.dumps([[o.path, o.reason] for o in fitted.omitted])
        return Prepared({"custom_id": custom_id(self.prefix, job.id), "params": _params(repo, prompt)},
                        job.repository, repo.model, omitted, tokens,
                        worst_case(tokens, repo, self.settings, batch=True))

    def _repo_work(self, job: ReviewJob) -> _RepoWork:
        key = (job.repository, job.repo_rules or None)
        work = self._work.get(key)
        if work is None:
            try:
                work = self._work[key] = self._new_work(job)
            except ConfigError as exc:
                work = self._work[key] = exc
        if isinstance(work, ConfigError):
            raise work.with_traceback(None)
        return work

    def _new_work(self, job: ReviewJob) -> _RepoWork:
        repo = effective_settings(self.settings, job)
        price = self.settings.prices.price(repo.model)
        room = price.context_window - repo.max_tokens - PROMPT_OVERHEAD_TOKENS
        return _RepoWork(repo, compile_ignores(DEFAULT_IGNORES + repo.ignore), max(min(repo.token_budget, room), 1000))


def _params(repo: RepoSettings, prompt: RenderedPrompt) -> dict[str, Any]:
    system: dict[str, Any] = {"type": "text", "text": prompt.system}
    if repo.prompt_caching:  # tools + system prompt are the prefix every request of the repository shares
        system["cache_control"] = {"type": "ephemeral", "ttl": repo.cache_ttl}
    return {
        "model": repo.model,
        "max_tokens": repo.max_tokens,
        "system": [system],
        "messages": [{"role": "user", "content": prompt.user}],
        "tools": _TOOLS,
        "tool_choice": _TOOL_CHOICE,
    }


# The same objects go into every request (never modified), so their JSON and tokens are worked out once.
_TOOLS: list[dict[str, Any]] = [REVIEW_TOOL]
_TOOL_CHOICE: dict[str, str] = {"type": "tool", "name": TOOL_NAME}
_TOOL_TOKENS = estimate_tokens(json.dumps(REVIEW_TOOL))
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # the SDK's own encoding of a body
_SHARED_KEYS = ("tools", "tool_choice")
_SHARED_JSON = f',"tools":{_JSON.encode(_TOOLS)},"tool_choice":{_JSON.encode(_TOOL_CHOICE)}}}}}'


def _not_worth_a_request(repo: RepoSettings, fitted: FittedDiff) -> str | None:
    """Why the fitted diff is not sent (and so not billed), or None."""
    if fitted.over_hard_limit:
        return (f"the reviewable diff is over the hard limit of {repo.hard_limit_tokens:,} tokens; "
                "split the pull request or raise hard_limit_tokens")
    if not fitted.kept and fitted.omitted and fitted.tokens == 0:
        return f"every changed file is ignored ({_listed(fitted)})"
    bare = without_content(fitted.diff) if fitted.kept else None
    if bare is not None:
        return bare + (f"; left out: {_listed(fitted)}" if fitted.omitted else "")
    return None


def _listed(fitted: FittedDiff) -> str:
    return "; ".join(f"{shown(o.path)}: {o.reason}" for o in fitted.omitted[:5])


# --- results --------------------------------------------------------------------------------------


def result_row(settings: Settings, batch_id: int | None, job: ReviewJob, line: ResultLine, *, now: datetime,
               batch: bool = True) -> Result:
    """The stored row of one result line, priced from its usage (batch or standard price)."""
    return Result(**result_values(settings, batch_id, job.id, job.model, line, now=now, batch=batch))


def result_values(settings: Settings, batch_id: int | None, job_id: int, job_model: str | None, line: ResultLine,
                  *, now: datetime, batch: bool = True) -> dict[str, Any]:
    """The columns of `result_row` (every one, so that rows of a chunk go in one executemany INSERT)."""
    model = line.model or job_model
    values: dict[str, Any] = {
        "batch_id": batch_id, "job_id": job_id, "custom_id": line.custom_id, "result_type": line.type,
        "is_batch": batch, "model": model, "stop_reason": line.stop_reason, "text": line.text,
        "content_json": line.content_json, "error_type": line.error_type, "error_message": line.error_message,
        "created_at": now, **_UNBILLED}
    if line.type == ResultType.SUCCEEDED and line.usage is not None:
        values.update(_price(settings, model, job_id, job_model, line.usage, batch))
    return values


_UNBILLED: dict[str, int | None] = {
    "input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    "cache_creation_5m_tokens": None, "cache_creation_1h_tokens": None,
    "cost_micro_usd": 0, "standard_cost_micro_usd": 0, "cache_saved_micro_usd": 0}


def _price(settings: Settings, model: str | None, job_id: int, job_model: str | None, usage: Usage,
           batch: bool) -> dict[str, int | None]:
    """The usage and cost columns of a succeeded line (its tokens alone when its model has no price)."""
    tokens: dict[str, int | None] = {
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_5m_tokens": usage.cache_creation_5m_tokens,
        "cache_creation_1h_tokens": usage.cache_creation_1h_tokens}
    price = settings.prices.models.get(model or "") or settings.prices.models.get(job_model or "")
    if price is None:
        log.error("no price for model %r: result of job %s recorded without cost", model, job_id)
        return tokens
    cost = cost_of(usage, price, batch=batch)
    return {**tokens, "cost_micro_usd": cost.charged_micro_usd, "standard_cost_micro_usd": cost.standard_micro_usd,
            "cache_saved_micro_usd": cost.cache_saved_micro_usd}


def latest_result(session: Session, job_id: int) -> Result | None:
    """The newest succeeded result of a job (a job answered twice, e.g. after a retry, keeps both)."""
    return session.scalars(select(Result).where(Result.job_id == job_id,
                                                Result.result_type == ResultType.SUCCEEDED.value)
                           .order_by(Result.id.desc()).limit(1)).first()


def jobs_of_batch(session: Session, batch_id: int, state: State) -> Sequence[ReviewJob]:
    return session.scalars(select(ReviewJob).where(
        ReviewJob.batch_id == batch_id, ReviewJob.state == state.value).order_by(ReviewJob.id)).all()


def job_ids_of_batch(session: Session, batch_id: int, state: State) -> list[int]:
    """The ids alone (a batch holds up to 100,000 jobs: never load them whole as rows)."""
    return list(session.scalars(select(ReviewJob.id).where(
        ReviewJob.batch_id == batch_id, ReviewJob.state == state.value).order_by(ReviewJob.id)))


# --- an operator's cancel -------------------------------------------------------------------------


def canceled_by_operator(session: Session, job: ReviewJob) -> bool:
    batch = session.get(Batch, job.batch_id) if job.batch_id is not None else None
    return batch is not None and batch.cancel_requested_at is not None


def requeue_canceled(session: Session, job: ReviewJob, *, now: datetime, actor: str | None) -> None:
    """A request an operator canceled goes back to the queue, and the attempt it used is given back."""
    transition(session, job.id, State.SUBMITTED, State.QUEUED, now=now, actor=actor,
               attempts=max(job.attempts - 1, 0),
               reason="its batch was canceled by an operator; queued again (the attempt is not counted)")
