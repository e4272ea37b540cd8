"""Local emulator of the Anthropic Message Batches API (plus sync Messages and count_tokens), served over
real HTTP so that the unmodified `anthropic` client talks to it through `base_url`.

Invariants, taken from the wire contract (shared/reference/anthropic-batches.md):

- Auth by `x-api-key` or `Authorization: Bearer` (SDK 2.x sends the latter); every response has a
  `request-id`, every error the standard `{"type":"error","error":{...},"request_id":...}` body.
- A batch is `in_progress` until its `polls_to_end`-th retrieve (or `end_all`), then every result is
  computed at once, in request order, so prompt-cache writes and reads are deterministic. Until then all
  requests count as `processing`. Cancel makes it `canceling`; the next retrieve ends it with every request
  `canceled`. Past `expires_at` (see `advance_clock`) a retrieve ends it with every request `expired`.
- Envelope problems (count, size, custom_id) reject the whole create with 400/413; problems inside
  `params` become `errored` lines with an inner `invalid_request_error`, as the real API validates them
  asynchronously.
- Results are JSONL, one compact line per request, `\\n`-terminated, no blank line, shuffled with a seed
  derived from the batch id (consumers must join on custom_id). The body is built once, when the batch
  ends; `EmulatedBatch.results` decodes it back on demand, so 100,000 results cost one bytes object.
- Token counts are about one token per 4 characters (see `measure`); the fake model lives in `model.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from reviewer.emulators import model
from reviewer.emulators._server import EmulatorServer, Request, Response

KNOWN_MODELS = frozenset(
    {
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-6",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "claude-sonnet-5",
        "claude-opus-5",
    }
)
# Minimum cacheable prefix per model; shorter prefixes are silently not cached (reference §5).
DEFAULT_CACHE_MIN_TOKENS = {
    "claude-opus-4-7": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-5-20251101": 4096,
    "claude-haiku-4-5": 4096,
    "claude-haiku-4-5-20251001": 4096,
}
CACHE_MIN_TOKENS_OTHERS = 1024
CACHE_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
MAX_BREAKPOINTS = 4
MAX_REQUESTS = 100_000
MAX_BATCH_BYTES = 256_000_000  # "256 MB" in the docs, units unstated: the stricter (decimal) reading
BATCH_WINDOW = timedelta(hours=24)
RESULTS_RETENTION = timedelta(days=29)
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
OLD_API_VERSION = "2023-06-01"  # the last version that still accepted sampling parameters
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
NOT_PARAMS = ("betas", "extra_body", "extra_headers", "extra_query")  # SDK kwargs people put in params by mistake
QUEUE_FULL_RETRY_AFTER = "1"  # seconds; the SDK sleeps the full value, so keep it small
OUTCOMES = frozenset({"errored", "expired", "canceled", "malformed", "max_tokens"})
ERROR_MESSAGES = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "rate_limit_error": "Rate limited",
    "invalid_request_error": "Invalid request",
    "timeout_error": "Request timed out",
}


class ApiError(Exception):
    """An HTTP error answer: `status`, the error `type` and its `message`."""

    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def _not_found(what: str = "The requested resource could not be found.") -> ApiError:
    return ApiError(404, "not_found_error", what)


def _random_id(prefix: str, length: int = 24) -> str:
    return prefix + "01" + "".join(secrets.choice(model.BASE58) for _ in range(length - 2))


def _timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# batches ------------------------------------------------------------------------------------------------


@dataclass
class EmulatedBatch:
    id: str
    requests: list[dict[str, Any]]  # {"custom_id", "params"} as sent
    created_at: datetime
    expires_at: datetime
    api_version: str
    processing_status: str = "in_progress"
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    archived_at: datetime | None = None
    retrieves: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    results_body: bytes = b""  # the JSONL download, shuffled
    # offsets[2*i], offsets[2*i+1]: the line of request i inside results_body (request order)
    offsets: array[int] = field(default_factory=lambda: array("q"))

    @property
    def results(self) -> list[dict[str, Any]]:
        """Result lines in request order (empty until the batch ended)."""
        body, spans = self.results_body, self.offsets
        return [json.loads(body[spans[i] : spans[i + 1]]) for i in range(0, len(spans), 2)]

    def as_json(self, base_url: str) -> dict[str, Any]:
        ended = self.processing_status == "ended"
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            counts.update(self.counts)
        else:
            counts["processing"] = len(self.requests)
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": counts,
            "ended_at": _timestamp(self.ended_at),
            "created_at": _timestamp(self.created_at),
            "expires_at": _timestamp(self.expires_at),
            "archived_at": _timestamp(self.archived_at),
            "cancel_initiated_at": _timestamp(self.cancel_initiated_at),
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }


@dataclass
class _OutcomeRule:
    pattern: re.Pattern[str]
    outcome: str
    times: int
    error_type: str


# tokens and the prompt cache ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Breakpoint:
    digest: bytes  # hash of the prefix up to and including the block with cache_control
    tokens: int  # tokens of that prefix
    ttl: str  # "5m" or "1h"


@dataclass(frozen=True)
class Measure:
    total_tokens: int
    breakpoints: list[Breakpoint]


def _tokens(chars: int) -> int:
    return math.ceil(chars / model.CHARS_PER_TOKEN)


def _units(params: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(tag, text, cache_control) of every cacheable unit in prompt order: tools, system, messages. The tag is
    hashed with the text (a role change is a different prompt) but not counted."""
    units: list[tuple[str, str, Any]] = []
    for tool in _list(params.get("tools")):
        if isinstance(tool, dict):
            bare = {k: v for k, v in tool.items() if k != "cache_control"}
            units.append(("tool", json.dumps(bare, sort_keys=True), tool.get("cache_control")))
    system = params.get("system")
    if isinstance(system, str):
        units.append(("system", system, None))
    elif isinstance(system, list):
        units.extend(("system", *_block_unit(block)) for block in system)
    for message in _list(params.get("messages")):
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role")), message.get("content")
        if isinstance(content, str):
            units.append((role, content, None))
        elif isinstance(content, list):
            units.extend((role, *_block_unit(block)) for block in content)
    automatic = params.get("cache_control")
    if isinstance(automatic, dict) and units:
        # automatic caching puts the breakpoint on the last cacheable block
        tag, text, _ = units[-1]
        units[-1] = (tag, text, automatic)
    return units


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _block_unit(block: Any) -> tuple[str, Any]:
    if not isinstance(block, dict):
        return json.dumps(block), None
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return block["text"], block.get("cache_control")
    bare = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(bare, sort_keys=True), block.get("cache_control")


def measure(params: Mapping[str, Any]) -> Measure:
    """Estimated input tokens (at least 1) and the cache breakpoints, in prompt order."""
    units = _units(params)
    if not any(isinstance(control, dict) for _, _, control in units):
        return Measure(max(1, _tokens(sum(len(text) for _, text, _ in units))), [])
    hasher = hashlib.sha256()
    chars = 0
    breakpoints: list[Breakpoint] = []
    for tag, text, control in units:
        chars += len(text)
        hasher.update(tag.encode() + b"\x00" + text.encode() + b"\x00")
        if isinstance(control, dict):
            ttl = "1h" if control.get("ttl") == "1h" else "5m"
            breakpoints.append(Breakpoint(hasher.copy().digest(), _tokens(chars), ttl))
    return Measure(max(1, _tokens(chars)), breakpoints)


@dataclass(frozen=True)
class CacheUse:
    input_tokens: int
    read: int
    write_5m: int
    write_1h: int


class PromptCache:
    """Emulator-wide prompt cache: (model, prefix hash) -> expiry (emulator clock, seconds). A read refreshes
    the entry's TTL, as the real cache does."""

    def __init__(self, min_tokens: Mapping[str, int]) -> None:
        self._min_tokens = dict(min_tokens)
        self._entries: dict[tuple[str, bytes], tuple[float, str]] = {}

    def min_tokens(self, model_id: str) -> int:
        return self._min_tokens.get(model_id, self._min_tokens.get("*", CACHE_MIN_TOKENS_OTHERS))

    def use(self, model_id: str, measured: Measure, now: float) -> CacheUse:
        """Reads the longest cached prefix, writes every longer cacheable one (split by the TTL of the breakpoint
        that closes each segment); input_tokens is what remains after the last cached breakpoint."""
        if not measured.breakpoints:
            return CacheUse(measured.total_tokens, 0, 0, 0)
        minimum = self.min_tokens(model_id)
        cacheable = [bp for bp in measured.breakpoints if bp.tokens >= minimum]
        hit = -1
        for i in range(len(cacheable) - 1, -1, -1):
            entry = self._entries.get((model_id, cacheable[i].digest))
            if entry is not None and entry[0] > now:
                hit = i
                break
        read = cacheable[hit].tokens if hit >= 0 else 0
        if hit >= 0:
            ttl = cacheable[hit].ttl
            self._entries[(model_id, cacheable[hit].digest)] = (now + CACHE_TTL_SECONDS[ttl], ttl)
        written = {"5m": 0, "1h": 0}
        done = read
        for bp in cacheable[hit + 1 :]:
            written[bp.ttl] += bp.tokens - done
            done = bp.tokens
            self._entries[(model_id, bp.digest)] = (now + CACHE_TTL_SECONDS[bp.ttl], bp.ttl)
        return CacheUse(measured.total_tokens - done, read, written["5m"], written["1h"])


def _usage(cache: CacheUse, output_tokens: int, tier: str) -> dict[str, Any]:
    return {
        "input_tokens": cache.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache.write_5m + cache.write_1h,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.write_5m, "ephemeral_1h_input_tokens": cache.write_1h},
        "server_tool_use": None,
        "service_tier": tier,
    }


# validation -------------------------------------------------------------------------------------------


def validate_params(params: Mapping[str, Any], measured: Measure, *, batch: bool, api_version: str) -> str | None:
    """The message of the first problem in Messages `params`, or None. Same checks for batch lines and sync."""
    for check in (_check_model, _check_messages, _check_max_tokens, _check_extras, _check_tools):
        problem = check(params, batch, api_version)
        if problem is not None:
            return problem
    if len(measured.breakpoints) > MAX_BREAKPOINTS:
        found = len(measured.breakpoints)
        return f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
    ttls = [bp.ttl for bp in measured.breakpoints]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        return "cache_control: a ttl='1h' breakpoint must not come after a ttl='5m' breakpoint"
    return None


def _check_model(params: Mapping[str, Any], batch: bool, api_version: str) -> str | None:
    model_id = params.get("model")
    if model_id is None:
        return "model: Field required"
    if model_id not in KNOWN_MODELS:
        return f"model: Unknown model '{model_id}'"
    return None


def _check_messages(params: Mapping[str, Any], batch: bool, api_version: str) -> str | None:
    messages = params.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if not isinstance(message.get("content"), (str, list)):
            return f"messages.{i}.content: Field required"
    return None


def _check_max_tokens(params: Mapping[str, Any], batch: bool, api_version: str) -> str | None:
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    floor = 1 if batch else 0  # max_tokens 0 (cache pre-warm) is sync-only
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < floor:
        return f"max_tokens: Input should be greater than or equal to {floor}"
    return None


def _check_extras(params: Mapping[str, Any], batch: bool, api_version: str) -> str | None:
    if params.get("stream"):
        return "stream: streaming is not supported in the Message Batches API" if batch else (
            "stream: the emulator does not stream; send stream=false"
        )
    if batch and "speed" in params:
        return "speed: fast mode is not available with the Message Batches API"
    if api_version != OLD_API_VERSION:
        for name in SAMPLING_PARAMS:
            if name in params:
                return f"{name}: this parameter was removed in API version 2026-10-21"
    for name in NOT_PARAMS:
        if name in params:
            return f"{name}: Extra inputs are not permitted"
    return None


def _check_tools(params: Mapping[str, Any], batch: bool, api_version: str) -> str | None:
    choice = params.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    names = {t.get("name") for t in params.get("tools") or [] if isinstance(t, dict)}
    if choice.get("type") == "tool" and choice.get("name") not in names:
        return f"tool_choice.name: Tool '{choice.get('name')}' not found in tools"
    thinking = params.get("thinking")
    if choice.get("type") in ("tool", "any") and isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def _validate_create(body: Any) -> list[dict[str, Any]]:
    """The batch's requests, or ApiError 400 for an envelope problem (rejects the whole create)."""
    if not isinstance(body, dict):
        raise _invalid("Input should be a valid dictionary")
    requests = body.get("requests")
    if requests is None:
        raise _invalid("requests: Field required")
    if not isinstance(requests, list):
        raise _invalid("requests: Input should be a valid list")
    if not 1 <= len(requests) <= MAX_REQUESTS:
        bound = "at least 1 item" if not requests else f"at most {MAX_REQUESTS} items"
        raise _invalid(f"requests: List should have {bound} after validation, not {len(requests)}")
    seen: dict[str, int] = {}
    for i, request in enumerate(requests):
        _validate_request_envelope(i, request, seen)
    return requests


def _validate_request_envelope(i: int, request: Any, seen: dict[str, int]) -> None:
    if not isinstance(request, dict):
        raise _invalid(f"requests.{i}: Input should be a valid dictionary")
    for key in request:
        if key not in ("custom_id", "params"):
            raise _invalid(f"requests.{i}.{key}: Extra inputs are not permitted")
    custom_id = request.get("custom_id")
    if custom_id is None:
        raise _invalid(f"requests.{i}.custom_id: Field required")
    if not isinstance(custom_id, str):
        raise _invalid(f"requests.{i}.custom_id: Input should be a valid string")
    if len(custom_id) > 64:
        raise _invalid(f"requests.{i}.custom_id: String should have at most 64 characters")
    if not CUSTOM_ID.fullmatch(custom_id):
        raise _invalid(f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    if custom_id in seen:
        raise _invalid(f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}' (also requests.{seen[custom_id]})")
    seen[custom_id] = i
    if "params" not in request:
        raise _invalid(f"requests.{i}.params: Field required")
    if not isinstance(request["params"], dict):
        raise _invalid(f"requests.{i}.params: Input should be a valid dictionary")


# the emulator -------------------------------------------------------------------------------------------

_BATCH_PATH = re.compile(r"/v1/messages/batches/([^/]+)(/cancel|/results)?/?")


class AnthropicEmulator:
    """The Anthropic API on 127.0.0.1. Fault switches: `set_outcome`, `transient_404`, `set_queue_limit`,
    `archive`, `advance_clock`, and the HTTP-level ones on `server` (`fail_next`, `hold_after_processing`)."""

    def __init__(
        self,
        *,
        api_key: str = "sk-ant-demo",
        polls_to_end: int = 2,
        public_url: str | None = None,
        port: int = 0,
        cache_min_tokens: Mapping[str, int] | None = None,
    ) -> None:
        self.api_key = api_key
        self.server = EmulatorServer(self._handle, public_url=public_url, port=port)
        self._initial_polls_to_end = polls_to_end
        self._cache_min_tokens = {**DEFAULT_CACHE_MIN_TOKENS, **(cache_min_tokens or {})}
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forgets every batch, switch, cache entry and recorded request, so that one running emulator can
        serve many tests (stopping a server waits out its 0.5 s poll interval)."""
        with self._lock:
            self.polls_to_end = self._initial_polls_to_end
            self.batches: dict[str, EmulatedBatch] = {}
            self.sync_messages: list[dict[str, Any]] = []
            self.transient_404 = 0
            self.max_body_bytes = MAX_BATCH_BYTES
            self.cache = PromptCache(self._cache_min_tokens)
            self._outcomes: list[_OutcomeRule] = []
            self._queue_limit: int | None = None
            self._clock_offset = timedelta(0)
            self._sequence: dict[str, int] = {}  # creation order; outlives deletion so list cursors stay valid
            self.server.requests.clear()

    # lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> AnthropicEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> AnthropicEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    # switches ---------------------------------------------------------------------------------------------

    def set_outcome(
        self, custom_id_pattern: str, outcome: str, *, times: int = 1, error_type: str = "overloaded_error"
    ) -> None:
        """The next `times` batch requests whose custom_id fullmatches the regex end with `outcome`:
        errored (inner `error_type`), expired, canceled, malformed (succeeded but not valid for the requested
        structure) or max_tokens (succeeded, cut short)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {sorted(OUTCOMES)}")
        with self._lock:
            self._outcomes.append(_OutcomeRule(re.compile(custom_id_pattern), outcome, times, error_type))

    def set_queue_limit(self, n: int | None) -> None:
        """At most `n` requests processing across all batches; a create beyond it gets 429."""
        with self._lock:
            self._queue_limit = n

    def advance_clock(self, seconds: float) -> None:
        """Moves the emulator's clock (timestamps, cache TTLs, batch expiry) forward without sleeping."""
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    def end_all(self) -> None:
        """Ends every batch that has not ended, as if processing finished now."""
        with self._lock:
            for batch in self.batches.values():
                if batch.processing_status != "ended":
                    self._end(batch, "canceled" if batch.processing_status == "canceling" else None)

    def archive(self, batch_id: str) -> None:
        """As if 29 days passed since creation: `archived_at` is set and results cannot be downloaded."""
        with self._lock:
            batch = self.batches[batch_id]
            if batch.processing_status != "ended":
                self._end(batch, "expired")
            batch.archived_at = batch.created_at + RESULTS_RETENTION

    # HTTP -------------------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        request_id = _random_id("req_")
        try:
            self._authenticate(request)
            with self._lock:
                response = self._route(request)
        except ApiError as exc:
            body = {"type": "error", "error": {"type": exc.type, "message": exc.message}, "request_id": request_id}
            response = Response.json(exc.status, body, exc.headers)
        response.headers["request-id"] = request_id
        return response

    def _authenticate(self, request: Request) -> None:
        key = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization", "")
        if key is None and authorization.lower().startswith("bearer "):
            key = authorization[len("bearer ") :].strip()
        if key != self.api_key:
            raise ApiError(401, "authentication_error", "invalid x-api-key")

    def _route(self, request: Request) -> Response:
        method, path = request.method, request.path.rstrip("/")
        if path == "/v1/messages" and method == "POST":
            return self._create_message(request)
        if path == "/v1/messages/count_tokens" and method == "POST":
            return self._count_tokens(request)
        if path == "/v1/messages/batches":
            if method == "POST":
                return self._create_batch(request)
            if method == "GET":
                return self._list_batches(request)
        match = _BATCH_PATH.fullmatch(path)
        if match is not None:
            batch_id, action = match.group(1), match.group(2)
            if method == "GET" and action is None:
                return self._retrieve(batch_id)
            if method == "DELETE" and action is None:
                return self._delete(batch_id)
            if method == "POST" and action == "/cancel":
                return self._cancel(batch_id)
            if method == "GET" and action == "/results":
                return self._results(batch_id)
        raise _not_found(f"Not found: {method} {request.path}")

    def _json_body(self, request: Request) -> Any:
        try:
            return json.loads(request.body or b"null")
        except ValueError as exc:
            raise _invalid(f"The request body is not valid JSON: {exc}") from None

    def _api_version(self, request: Request) -> str:
        return request.headers.get("anthropic-version", "2026-10-21")

    def _batch(self, batch_id: str) -> EmulatedBatch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise _not_found(f"No message batch with id '{batch_id}'")
        return batch

    # batch endpoints ----------------------------------------------------------------------------------------

    def _create_batch(self, request: Request) -> Response:
        if len(request.body) > self.max_body_bytes:
            raise ApiError(413, "request_too_large", f"Request exceeds the maximum size of {self.max_body_bytes} bytes")
        requests = _validate_create(self._json_body(request))
        self._check_queue(len(requests))
        now = self.now()
        batch = EmulatedBatch(
            id=_random_id("msgbatch_"),
            requests=requests,
            created_at=now,
            expires_at=now + BATCH_WINDOW,
            api_version=self._api_version(request),
        )
        self.batches[batch.id] = batch
        self._sequence[batch.id] = len(self._sequence)
        if self.polls_to_end <= 0:
            self._end(batch, None)
        return Response.json(200, batch.as_json(self.url))

    def _check_queue(self, incoming: int) -> None:
        if self._queue_limit is None:
            return
        queued = sum(len(b.requests) for b in self.batches.values() if b.processing_status != "ended")
        if queued + incoming > self._queue_limit:
            raise ApiError(
                429,
                "rate_limit_error",
                f"Number of batch requests in the processing queue would exceed {self._queue_limit} "
                f"({queued} queued, {incoming} in this batch)",
                {"retry-after": QUEUE_FULL_RETRY_AFTER},
            )

    def _retrieve(self, batch_id: str) -> Response:
        batch = self._batch(batch_id)
        if self.transient_404 > 0 and batch.retrieves == 0:
            self.transient_404 -= 1  # the real API sometimes cannot see a batch seconds after creating it
            raise _not_found(f"No message batch with id '{batch_id}'")
        batch.retrieves += 1
        if batch.processing_status != "ended":
            if self.now() >= batch.expires_at:
                self._end(batch, "expired")
            elif batch.processing_status == "canceling":
                self._end(batch, "canceled")
            elif batch.retrieves >= self.polls_to_end:
                self._end(batch, None)
        return Response.json(200, batch.as_json(self.url))

    def _list_batches(self, request: Request) -> Response:
        raw_limit = request.param("limit", "20") or "20"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            raise _invalid("limit: Input should be an integer between 1 and 1000")
        limit = int(raw_limit)
        newest_first = sorted(self.batches.values(), key=lambda b: self._sequence[b.id], reverse=True)
        after_id, before_id = request.param("after_id"), request.param("before_id")
        if after_id is not None:
            cursor = self._cursor("after_id", after_id)
            older = [b for b in newest_first if self._sequence[b.id] < cursor]
            page, has_more = older[:limit], len(older) > limit
        elif before_id is not None:
            cursor = self._cursor("before_id", before_id)
            newer = [b for b in newest_first if self._sequence[b.id] > cursor]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = newest_first[:limit], len(newest_first) > limit
        return Response.json(
            200,
            {
                "data": [b.as_json(self.url) for b in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            },
        )

    def _cursor(self, name: str, batch_id: str) -> int:
        if batch_id not in self._sequence:
            raise _invalid(f"{name}: unknown message batch id '{batch_id}'")
        return self._sequence[batch_id]

    def _cancel(self, batch_id: str) -> Response:
        batch = self._batch(batch_id)
        if batch.processing_status == "ended":
            raise _invalid(f"Message batch {batch_id} has already ended and cannot be canceled")
        if batch.processing_status == "in_progress":
            batch.processing_status = "canceling"
            batch.cancel_initiated_at = self.now()
        return Response.json(200, batch.as_json(self.url))

    def _delete(self, batch_id: str) -> Response:
        batch = self._batch(batch_id)
        if batch.processing_status != "ended":
            status = batch.processing_status
            raise _invalid(f"Message batch {batch_id} is still {status}; cancel it and wait for it to end")
        del self.batches[batch_id]
        return Response.json(200, {"id": batch_id, "type": "message_batch_deleted"})

    def _results(self, batch_id: str) -> Response:
        batch = self._batch(batch_id)
        if batch.processing_status != "ended":
            raise _invalid(f"Message batch {batch_id} has not ended; results are available once it has")
        if batch.archived_at is not None:
            raise _not_found(f"The results of message batch {batch_id} were archived and are no longer available")
        return Response(200, batch.results_body, {"Content-Type": "application/x-jsonl"})

    # ending a batch -----------------------------------------------------------------------------------------

    def _end(self, batch: EmulatedBatch, every: str | None) -> None:
        """Computes every result (each one `every` if given: canceled or expired) and builds the download."""
        now = self.now()
        lines: list[bytes] = []
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for request in batch.requests:
            result = {"type": every} if every is not None else self._batch_result(batch, request, now)
            counts[result["type"]] += 1
            line = {"custom_id": request["custom_id"], "result": result}
            lines.append(model.dumps(line).encode())
        batch.results_body, batch.offsets = _shuffled_body(lines, batch.id)
        batch.counts = counts
        batch.processing_status = "ended"
        batch.ended_at = now

    def _batch_result(self, batch: EmulatedBatch, request: dict[str, Any], now: datetime) -> dict[str, Any]:
        custom_id, params = request["custom_id"], request["params"]
        rule = self._take_outcome(custom_id)
        if rule is not None and rule.outcome in ("expired", "canceled"):
            return {"type": rule.outcome}
        if rule is not None and rule.outcome == "errored":
            return _errored(rule.error_type, ERROR_MESSAGES.get(rule.error_type, rule.error_type))
        measured = measure(params)
        problem = validate_params(params, measured, batch=True, api_version=batch.api_version)
        if problem is not None:
            return _errored("invalid_request_error", problem)
        outcome = rule.outcome if rule is not None else None
        message_id = "msg_01" + model.base58(hashlib.sha256(f"{batch.id}/{custom_id}".encode()).digest(), 22)
        message = self._message(params, measured, message_id, now, "batch", outcome)
        return {"type": "succeeded", "message": message}

    def _take_outcome(self, custom_id: str) -> _OutcomeRule | None:
        for rule in self._outcomes:
            if rule.pattern.fullmatch(custom_id):
                rule.times -= 1
                if rule.times <= 0:
                    self._outcomes.remove(rule)
                return rule
        return None

    def _message(
        self,
        params: dict[str, Any],
        measured: Measure,
        message_id: str,
        now: datetime,
        tier: str,
        outcome: str | None = None,
    ) -> dict[str, Any]:
        if outcome == "malformed":
            content, stop_reason = model.malformed_answer(params)
        elif outcome == "max_tokens":
            content, stop_reason = model.truncated_answer(params)
        else:
            content, stop_reason = model.answer(params)
        cache = self.cache.use(params["model"], measured, now.timestamp())
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": params["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "stop_details": None,
            "container": None,
            "usage": _usage(cache, model.output_tokens(content), tier),
        }

    # sync endpoints -----------------------------------------------------------------------------------------

    def _create_message(self, request: Request) -> Response:
        params = self._json_body(request)
        if not isinstance(params, dict):
            raise _invalid("Input should be a valid dictionary")
        self.sync_messages.append(params)
        measured = measure(params)
        problem = validate_params(params, measured, batch=False, api_version=self._api_version(request))
        if problem is not None:
            raise _invalid(problem)
        message = self._message(params, measured, _random_id("msg_"), self.now(), "standard")
        return Response.json(200, message)

    def _count_tokens(self, request: Request) -> Response:
        params = self._json_body(request)
        if not isinstance(params, dict):
            raise _invalid("Input should be a valid dictionary")
        problem = _check_model(params, False, "") or _check_messages(params, False, "")
        if problem is not None:
            raise _invalid(problem)
        return Response.json(200, {"input_tokens": measure(params).total_tokens})


def _errored(error_type: str, message: str) -> dict[str, Any]:
    error = {"type": error_type, "message": message}
    return {"type": "errored", "error": {"type": "error", "error": error, "request_id": _random_id("req_")}}


def _shuffled_body(lines: list[bytes], batch_id: str) -> tuple[bytes, array[int]]:
    """The JSONL download in a seeded shuffled order, and each request's (start, end) inside it."""
    order = list(range(len(lines)))
    random.Random(batch_id).shuffle(order)
    offsets = array("q", bytes(16 * len(lines)))
    parts: list[bytes] = []
    position = 0
    for index in order:
        line = lines[index]
        offsets[2 * index], offsets[2 * index + 1] = position, position + len(line)
        parts.append(line)
        parts.append(b"\n")
        position += len(line) + 1
    return b"".join(parts), offsets
