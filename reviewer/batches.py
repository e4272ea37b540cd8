"""Thin adapter over the anthropic SDK's Message Batches API: create, retrieve, list, cancel and the
streamed results, with the SDK's failures translated into `AnthropicError`.

Traps it avoids: the SDK sends no idempotency key, so `create` is sent with retries off (a crash or
timeout is reconciled from `list` instead); `create` takes the body as a file (spooled request by
request, spool.py) and streams it, where `messages.batches.create(requests=...)` would hold the batch as
dicts, a deep copy and one JSON string; the results decoder leaves the HTTP response open on error, so
it is always closed; results are streamed, never held in memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, TypeVar

import anthropic
import httpx2  # the SDK's HTTP client: a download read here can break off with its errors

from reviewer.config import Settings, require_anthropic_key
from reviewer.cost import Usage
from reviewer.errors import AnthropicError, body_detail
from reviewer.models import ResultType

T = TypeVar("T")
LIST_PAGE_SIZE = 100
# The SDK logs the bodies it builds here at debug (gated by logs.BODY_LOGGERS): a streamed create body is
# logged to it too, so that `--log-prompts` still shows the prompts sent
_SDK_LOG = logging.getLogger("anthropic._base_client")


@dataclass(frozen=True)
class BatchStatus:
    id: str
    processing_status: str
    created_at: datetime
    ended_at: datetime | None
    archived_at: datetime | None
    request_total: int


@dataclass(frozen=True)
class ResultLine:
    custom_id: str
    type: str  # a ResultType: succeeded | errored | expired | canceled
    model: str | None = None
    stop_reason: str | None = None
    text: str | None = None
    content_json: str | None = None
    usage: Usage | None = None
    error_type: str | None = None
    error_message: str | None = None


def _status(batch: Any) -> BatchStatus:
    counts = batch.request_counts
    total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    return BatchStatus(batch.id, batch.processing_status, batch.created_at, batch.ended_at,
                       batch.archived_at, total)


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """The usage of a message, from its JSON."""
    creation = raw.get("cache_creation")
    split = creation if isinstance(creation, dict) and creation else None
    return Usage(
        input_tokens=raw.get("input_tokens") or 0,
        output_tokens=raw.get("output_tokens") or 0,
        cache_creation_input_tokens=raw.get("cache_creation_input_tokens") or 0,
        cache_read_input_tokens=raw.get("cache_read_input_tokens") or 0,
        cache_creation_5m_tokens=split.get("ephemeral_5m_input_tokens") if split else None,
        cache_creation_1h_tokens=split.get("ephemeral_1h_input_tokens") if split else None,
    )


def _succeeded(custom_id: str, message: Mapping[str, Any]) -> ResultLine:
    """A message (from a batch or the standard API), as JSON, as a succeeded line: its text, its content
    blocks as JSON (the structured review lives in a tool_use block), and its usage."""
    blocks = message.get("content") or []
    text = "\n\n".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    return ResultLine(custom_id, ResultType.SUCCEEDED, message.get("model"), message.get("stop_reason"), text,
                      json.dumps(blocks), usage_from(message.get("usage") or {}))


def _line(item: Mapping[str, Any]) -> ResultLine:
    """One line of a results download, as JSON (a `MessageBatchIndividualResponse`)."""
    custom, result = item["custom_id"], item["result"]
    if result["type"] == ResultType.SUCCEEDED:
        return _succeeded(custom, result["message"])
    if result["type"] == ResultType.ERRORED:
        error = result.get("error")
        inner = error.get("error") if isinstance(error, dict) else None
        if not isinstance(inner, dict):
            return ResultLine(custom, ResultType.ERRORED, error_type="unknown", error_message=str(error))
        return ResultLine(custom, ResultType.ERRORED, error_type=inner.get("type", "unknown"),
                          error_message=inner.get("message", str(error)))
    return ResultLine(custom, result["type"])


def _jsonl(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a JSONL body that arrives in chunks of any size (blank lines left out)."""
    rest = b""
    for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        yield from (line for line in lines if line.strip())
    if rest.strip():
        yield rest


class Batches:
    def __init__(self, settings: Settings) -> None:
        self._client = anthropic.Anthropic(
            api_key=require_anthropic_key(settings),
            base_url=settings.anthropic_base_url,
            timeout=settings.anthropic.timeout_seconds,
            max_retries=2,
        )
        self.base_url = str(self._client.base_url)

    def close(self) -> None:
        """Close the SDK's HTTP client and its pooled connections (the copies made by `with_options`
        share it)."""
        self._client.close()

    def create(self, body: IO[bytes]) -> BatchStatus:
        """Create a batch from a finished create body (`spool.RequestSpool.body`), streamed from its file
        to the same endpoint `messages.batches.create` posts to; sent once, without the SDK's retries."""
        if _SDK_LOG.isEnabledFor(logging.DEBUG):  # `--log-prompts`: the body, as the SDK logs the ones it builds
            _SDK_LOG.debug("Request body: POST /v1/messages/batches %s", _peek(body))
        no_retry = self._client.with_options(max_retries=0)
        return self._call("create a message batch", lambda: _status(no_retry.post(
            "/v1/messages/batches", cast_to=anthropic.types.messages.MessageBatch, content=body,
            options={"headers": {"Content-Type": "application/json"}})))

    def retrieve(self, batch_id: str) -> BatchStatus:
        return self._call(f"retrieve batch {batch_id}",
                          lambda: _status(self._client.messages.batches.retrieve(batch_id)))

    def count_tokens(self, params: dict[str, Any]) -> int:
        """Input tokens of one request, measured by the (free) count_tokens endpoint."""
        fields = {k: params[k] for k in ("model", "system", "messages", "tools", "tool_choice") if k in params}
        return self._call("count tokens", lambda: self._client.messages.count_tokens(**fields).input_tokens)

    def create_message(self, custom_id: str, params: dict[str, Any]) -> ResultLine:
        """One request through the standard Messages API (the express lane), as a result line."""
        message = self._call("create a message", lambda: self._client.messages.create(**params))
        return _succeeded(custom_id, message.model_dump(mode="json"))

    def cancel(self, batch_id: str) -> BatchStatus:
        return self._call(f"cancel batch {batch_id}",
                          lambda: _status(self._client.messages.batches.cancel(batch_id)))

    def list_since(self, created_after: datetime) -> list[BatchStatus]:
        """Batches created at or after `created_after` (the list is newest first, so stop early)."""
        def run() -> list[BatchStatus]:
            found = []
            for batch in self._client.messages.batches.list(limit=LIST_PAGE_SIZE):
                if batch.created_at < created_after:
                    break
                found.append(_status(batch))
            return found

        return self._call("list message batches", run)

    @contextmanager
    def results(self, batch_id: str) -> Iterator[Iterator[ResultLine]]:
        """Stream the result lines of an ended batch; the response is closed even on error. The SDK finds
        the results URL and opens the download; its lines are read here, in the chunks the connection
        delivers, and decoded with `json` alone: the SDK's decoder reads 64 bytes at a time and builds a
        pydantic model per line, several times the cost (bench/poll_100k.py)."""
        decoder = self._call(f"download the results of batch {batch_id}",
                             lambda: self._client.messages.batches.results(batch_id))
        try:
            yield self._guarded(batch_id, _jsonl(decoder.http_response.iter_bytes()))
        finally:
            decoder.close()

    def _guarded(self, batch_id: str, lines: Iterator[bytes]) -> Iterator[ResultLine]:
        while True:
            try:
                line = _line(json.loads(next(lines)))
            except StopIteration:
                return
            except (ValueError, anthropic.APIError, httpx2.HTTPError) as exc:  # broken JSONL, a dropped connection
                raise AnthropicError(f"results of batch {batch_id} broke off: {body_detail(str(exc))}", "poll again",
                                     retryable=True) from None
            except (KeyError, TypeError) as exc:  # JSON, but not a batch result
                raise AnthropicError(f"results of batch {batch_id} hold a line that is not a result "
                                     f"({type(exc).__name__}: {body_detail(str(exc))})", "poll again",
                                     retryable=True) from None
            yield line

    def _call(self, action: str, run: Callable[[], T]) -> T:
        try:
            return run()
        except anthropic.AuthenticationError:
            raise AnthropicError(f"Anthropic rejected the API key while trying to {action} (401)",
                                 "check ANTHROPIC_API_KEY", status=401) from None
        except anthropic.APIStatusError as exc:
            retryable = exc.status_code in (404, 408, 409, 429) or exc.status_code >= 500
            raise AnthropicError(f"could not {action}: Anthropic answered {exc.status_code} {_detail(exc)}",
                                 status=exc.status_code, retryable=retryable) from None
        except anthropic.APIConnectionError:
            raise AnthropicError(f"could not {action}: cannot reach the Anthropic API at {self.base_url}",
                                 "check ANTHROPIC_BASE_URL and the network", retryable=True) from None
        except anthropic.AnthropicError as exc:  # e.g. results requested before the batch ended
            raise AnthropicError(f"could not {action}: {body_detail(str(exc))}", retryable=True) from None


def _peek(body: IO[bytes]) -> str:
    """The rest of `body`, leaving its position where it was."""
    start = body.tell()
    text = body.read().decode(errors="replace")
    body.seek(start)
    return text


def _detail(exc: anthropic.APIStatusError) -> str:
    """One line from the error answer, whatever its shape: the API's `{"error": {"type", "message"}}`,
    other JSON, a JSON string, an HTML page (a proxy's) or an empty body."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return body_detail(f"{error.get('type', '')}: {error.get('message', '')}")
        text = error if isinstance(error, str) else body.get("message")
        return body_detail(text if isinstance(text, str) else json.dumps(body, default=str))
    return body_detail(body if isinstance(body, str) or body is None else json.dumps(body, default=str))
