"""The Anthropic emulator, driven by the real `anthropic` client over HTTP (never patched), plus the fake
model's diff parsing and rules. Fast and sleep-free: batch progress is driven by retrieves, time by
`advance_clock`."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import Anthropic

from reviewer.emulators import model
from reviewer.emulators.anthropic import AnthropicEmulator, measure

KEY = "sk-ant-test"
MODEL = "claude-sonnet-4-6"

DIFF = """\
diff --git a/app/users.py b/app/users.py
index 1111111..2222222 100644
--- a/app/users.py
+++ b/app/users.py
@@ -1,7 +1,12 @@
 import requests
-import pickle
+import yaml
 
 
-def find(conn, name):
+def find(conn, name, tags=[]):
     cur = conn.cursor()
+    cur.execute(f"SELECT * FROM users WHERE name = '{name}'")
+    api_key = "sk-live-1234567890"
+    r = requests.get("https://example.com/users")
+    if r == None:
+        print(r)
     return cur.fetchall()
@@ -40,3 +45,6 @@ def load(path):
     with open(path) as f:
-        return pickle.load(f)
+        try:
+            return yaml.load(f)
+        except Exception:
+            pass
     # end
"""
ADDED_LINES = {2, 5, 7, 8, 9, 10, 11, 46, 47, 48, 49}
REVIEW_TOOL: dict[str, Any] = {
    "name": "report_review",
    "description": "Report the review.",
    "input_schema": {
        "type": "object",
        "properties": {"summary": {"type": "string"}, "findings": {"type": "array", "items": {"type": "object"}}},
        "required": ["summary", "findings"],
    },
}


@pytest.fixture(scope="module")
def running() -> Iterator[AnthropicEmulator]:
    # one server for the module: stopping a ThreadingHTTPServer waits out its 0.5 s poll interval
    with AnthropicEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def emu(running: AnthropicEmulator) -> AnthropicEmulator:
    running.reset()
    return running


@pytest.fixture
def client(emu: AnthropicEmulator) -> Iterator[Anthropic]:
    with Anthropic(api_key=KEY, base_url=emu.url, max_retries=0) as c:
        yield c


def params(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 4000, "messages": [{"role": "user", "content": text}], **extra}


def requests_for(*custom_ids: str, **extra: Any) -> list[Any]:
    return [{"custom_id": cid, "params": params(f"review {cid}", **extra)} for cid in custom_ids]


def run_batch(client: Anthropic, emu: AnthropicEmulator, requests: list[Any]) -> dict[str, Any]:
    """Creates a batch, ends it, and returns its results keyed by custom_id."""
    batch = client.messages.batches.create(requests=requests)
    emu.end_all()
    return {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}


# lifecycle --------------------------------------------------------------------------------------------------


def test_batch_ends_after_polls_and_results_join_on_custom_id(emu: AnthropicEmulator, client: Anthropic) -> None:
    ids = [f"pr-1-file-{i:03d}" for i in range(12)]
    created = client.messages.batches.create(requests=requests_for(*ids))
    assert created.processing_status == "in_progress"
    assert re.fullmatch(r"msgbatch_01[1-9A-HJ-NP-Za-km-z]{22}", created.id)
    assert created.request_counts.processing == 12 and created.results_url is None
    assert (created.expires_at - created.created_at).total_seconds() == 24 * 3600

    first = client.messages.batches.retrieve(created.id)
    assert first.processing_status == "in_progress" and first.request_counts.succeeded == 0
    ended = client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.succeeded == 12 and ended.request_counts.processing == 0
    assert ended.results_url == f"{emu.url}/v1/messages/batches/{created.id}/results"

    results = list(client.messages.batches.results(created.id))
    assert sorted(r.custom_id for r in results) == ids
    assert [r.custom_id for r in results] != ids  # shuffled: consumers must join on custom_id
    for r in results:
        assert r.result.type == "succeeded"
        message = r.result.message
        assert message.model == MODEL and message.usage.service_tier == "batch"
        assert message.content[0].type == "text"


def test_results_are_compact_jsonl_with_request_ids(emu: AnthropicEmulator, client: Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests_for("a", "b", "c"))
    emu.end_all()
    raw = httpx2.get(f"{emu.url}/v1/messages/batches/{batch.id}/results", headers={"x-api-key": KEY})
    assert raw.headers["content-type"] == "application/x-jsonl"
    assert raw.headers["request-id"].startswith("req_")
    assert raw.content.endswith(b"\n") and b"\n\n" not in raw.content and b"\r" not in raw.content
    lines = raw.content.decode().splitlines()
    assert len(lines) == 3 and all(": " not in line for line in lines)
    assert sorted(json.loads(line)["custom_id"] for line in lines) == ["a", "b", "c"]
    assert [r["custom_id"] for r in emu.batches[batch.id].results] == ["a", "b", "c"]  # request order


def test_polls_to_end_zero_ends_at_creation(emu: AnthropicEmulator, client: Anthropic) -> None:
    emu.polls_to_end = 0
    batch = client.messages.batches.create(requests=requests_for("x"))
    assert batch.processing_status == "ended"
    assert [r.custom_id for r in client.messages.batches.results(batch.id)] == ["x"]


def test_results_before_the_end_are_refused(emu: AnthropicEmulator, client: Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests_for("x"))
    with pytest.raises(anthropic.BadRequestError):
        client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_01unknown")


def test_list_paginates_newest_first(emu: AnthropicEmulator, client: Anthropic) -> None:
    created = [client.messages.batches.create(requests=requests_for("x")).id for _ in range(25)]
    listed = [b.id for b in client.messages.batches.list()]
    assert listed == created[::-1]
    assert emu.server.count("GET", "/v1/messages/batches") == 2  # auto-paginated: 20 + 5

    page = client.messages.batches.list(limit=10)
    assert [b.id for b in page.data] == created[:-11:-1] and page.has_more
    assert page.first_id == created[-1] and page.last_id == created[-10]
    assert [b.id for b in client.messages.batches.list(limit=7)] == created[::-1]

    newer = client.messages.batches.list(before_id=created[5], limit=3)
    assert [b.id for b in newer.data] == created[8:5:-1] and newer.has_more
    for bad in (0, 1001):
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.list(limit=bad)


def test_cancel_turns_unprocessed_requests_canceled(emu: AnthropicEmulator, client: Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests_for("a", "b"))
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 2
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
    assert {r.result.type for r in client.messages.batches.results(batch.id)} == {"canceled"}
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.cancel(batch.id)


def test_delete_only_after_the_end(emu: AnthropicEmulator, client: Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests_for("a"))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)
    emu.end_all()
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_batch_expires_when_the_clock_passes_expires_at(emu: AnthropicEmulator, client: Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests_for("a", "b"))
    emu.advance_clock(24 * 3600 + 1)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.expired == 2


# auth and create-time validation ---------------------------------------------------------------------------


def test_wrong_or_missing_key_is_401(emu: AnthropicEmulator) -> None:
    with Anthropic(api_key="sk-ant-wrong", base_url=emu.url, max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            wrong.messages.batches.list()
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": caught.value.request_id,
    }
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
    assert httpx2.get(f"{emu.url}/v1/messages/batches").status_code == 401
    assert httpx2.get(f"{emu.url}/v1/messages/batches", headers={"x-api-key": KEY}).status_code == 200


@pytest.mark.parametrize(
    ("custom_ids", "message"),
    [
        (["ok", "not ok!"], "requests.1.custom_id: String should match pattern"),
        (["ok", "x" * 65], "requests.1.custom_id: String should have at most 64 characters"),
        (["same", "other", "same"], "requests.2.custom_id: Duplicate custom_id 'same'"),
    ],
)
def test_bad_custom_id_rejects_the_whole_batch(
    emu: AnthropicEmulator, client: Anthropic, custom_ids: list[str], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.batches.create(requests=requests_for(*custom_ids))
    assert message in str(caught.value)
    assert emu.batches == {}


def test_envelope_limits(emu: AnthropicEmulator, client: Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="at least 1 item"):
        client.messages.batches.create(requests=[])
    with pytest.raises(anthropic.BadRequestError, match="requests.0.params"):
        client.messages.batches.create(requests=[{"custom_id": "a", "params": "nope"}])  # type: ignore[typeddict-item]
    emu.max_body_bytes = 100
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.batches.create(requests=requests_for("a"))
    assert caught.value.status_code == 413


def test_queue_limit_answers_429(emu: AnthropicEmulator, client: Anthropic) -> None:
    emu.set_queue_limit(5)
    first = client.messages.batches.create(requests=requests_for("a", "b", "c"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.batches.create(requests=requests_for("d", "e", "f"))
    assert caught.value.response.headers["retry-after"] == "1"
    emu.end_all()
    assert client.messages.batches.create(requests=requests_for("d", "e", "f")).id != first.id


# fault switches -----------------------------------------------------------------------------------------


def test_set_outcome_errored_expired_canceled(emu: AnthropicEmulator, client: Anthropic) -> None:
    emu.set_outcome(r"err-.*", "errored", times=2, error_type="api_error")
    emu.set_outcome("gone", "expired")
    emu.set_outcome("stop", "canceled")
    results = run_batch(client, emu, requests_for("err-1", "err-2", "err-3", "gone", "stop", "fine"))
    assert results["err-1"].type == results["err-2"].type == "errored"
    assert results["err-1"].error.error.type == "api_error"
    assert results["err-3"].type == "succeeded"  # times=2 was used up
    assert results["gone"].type == "expired" and results["stop"].type == "canceled"
    assert results["fine"].type == "succeeded"
    counts = client.messages.batches.list().data[0].request_counts
    assert (counts.succeeded, counts.errored, counts.expired, counts.canceled) == (2, 2, 1, 1)


def test_set_outcome_malformed_and_max_tokens(emu: AnthropicEmulator, client: Anthropic) -> None:
    emu.set_outcome("bad-.*", "malformed", times=2)
    emu.set_outcome("cut", "max_tokens")
    tool = {"tools": [REVIEW_TOOL], "tool_choice": {"type": "tool", "name": "report_review"}}
    json_format = {"output_config": {"format": {"type": "json_schema", "schema": REVIEW_TOOL["input_schema"]}}}
    requests = [
        {"custom_id": "bad-tool", "params": params(DIFF, **tool)},
        {"custom_id": "bad-json", "params": params(DIFF, **json_format)},
        {"custom_id": "cut", "params": params(DIFF, **tool)},
    ]
    results = run_batch(client, emu, requests)
    bad_tool = results["bad-tool"].message
    assert bad_tool.stop_reason == "tool_use" and bad_tool.content[0].type == "tool_use"
    findings = bad_tool.content[0].input["findings"]
    assert findings and all("line" not in f and "severity" not in f for f in findings)
    with pytest.raises(ValueError):
        json.loads(results["bad-json"].message.content[0].text)
    cut = results["cut"].message
    assert cut.stop_reason == "max_tokens" and cut.content[0].type == "text"
    assert cut.usage.output_tokens == model.output_tokens([{"type": "text", "text": cut.content[0].text}])


def test_invalid_params_become_errored_lines(emu: AnthropicEmulator, client: Anthropic) -> None:
    many_breakpoints = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    bad: dict[str, dict[str, Any]] = {
        "no-model": {k: v for k, v in params().items() if k != "model"},
        "no-messages": {k: v for k, v in params().items() if k != "messages"},
        "unknown-model": params(model="claude-3-opus-20240229"),
        "zero-tokens": params(max_tokens=0),
        "streaming": params(stream=True),
        "sampling": params(temperature=0.2),
        "breakpoints": params(system=many_breakpoints),
        "ttl-order": params(system=[
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ]),
    }
    results = run_batch(client, emu, [{"custom_id": k, "params": v} for k, v in bad.items()])
    for custom_id, result in results.items():
        assert result.type == "errored", custom_id
        assert result.error.error.type == "invalid_request_error", custom_id
    assert "Found 5" in results["breakpoints"].error.error.message


def test_transient_404_right_after_create(emu: AnthropicEmulator, client: Anthropic) -> None:
    emu.transient_404 = 2
    batch = client.messages.batches.create(requests=requests_for("a"))
    for _ in range(2):
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(batch.id)
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    assert emu.transient_404 == 0 and emu.batches[batch.id].retrieves == 1


def test_archived_results_are_gone(emu: AnthropicEmulator, client: Anthropic) -> None:
    batch = client.messages.batches.create(requests=requests_for("a"))
    emu.end_all()
    emu.archive(batch.id)
    retrieved = client.messages.batches.retrieve(batch.id)
    assert retrieved.archived_at is not None and retrieved.results_url is not None
    with pytest.raises(anthropic.NotFoundError):
        list(client.messages.batches.results(batch.id))


def test_server_faults_reach_the_client(emu: AnthropicEmulator, client: Anthropic) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    emu.server.fail_next("POST", r"^/v1/messages/batches$", 529, overloaded)
    with pytest.raises(anthropic.OverloadedError):
        client.messages.batches.create(requests=requests_for("a"))
    assert client.messages.batches.create(requests=requests_for("a")).processing_status == "in_progress"


# usage and prompt caching -----------------------------------------------------------------------------------

RUBRIC = "Review rubric. " * 400  # 6,000 chars: 1,500 tokens, above the 1,024 minimum of claude-sonnet-4-6


def cached_params(diff: str, ttl: str | None = "1h", rubric: str = RUBRIC) -> dict[str, Any]:
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return params(diff, system=[{"type": "text", "text": rubric, "cache_control": control}])


def test_cache_write_then_reads_within_and_across_batches(emu: AnthropicEmulator, client: Anthropic) -> None:
    prefix = measure(cached_params("")).breakpoints[0].tokens
    requests: list[dict[str, Any]] = [{"custom_id": f"f{i}", "params": cached_params(f"diff {i}")} for i in range(3)]
    first = run_batch(client, emu, requests)
    writer, reader = first["f0"].message.usage, first["f1"].message.usage
    assert writer.cache_creation_input_tokens == prefix and writer.cache_read_input_tokens == 0
    assert writer.cache_creation.ephemeral_1h_input_tokens == prefix
    assert writer.cache_creation.ephemeral_5m_input_tokens == 0
    assert reader.cache_read_input_tokens == prefix and reader.cache_creation_input_tokens == 0
    assert first["f2"].message.usage.cache_read_input_tokens == prefix
    sent = requests[1]["params"]
    total = client.messages.count_tokens(model=MODEL, messages=sent["messages"], system=sent["system"])
    assert reader.input_tokens + reader.cache_read_input_tokens == total.input_tokens

    emu.advance_clock(30 * 60)  # within the hour
    again = run_batch(client, emu, [{"custom_id": "g", "params": cached_params("another diff")}])
    assert again["g"].message.usage.cache_read_input_tokens == prefix

    emu.advance_clock(3601)  # the read above refreshed the entry; now it is gone
    late = run_batch(client, emu, [{"custom_id": "h", "params": cached_params("late diff")}])
    assert late["h"].message.usage.cache_creation.ephemeral_1h_input_tokens == prefix


def test_five_minute_ttl_and_minimum_length(emu: AnthropicEmulator, client: Anthropic) -> None:
    first = run_batch(client, emu, [{"custom_id": "a", "params": cached_params("d1", ttl=None)}])
    assert first["a"].message.usage.cache_creation.ephemeral_5m_input_tokens > 0
    emu.advance_clock(301)
    second = run_batch(client, emu, [{"custom_id": "b", "params": cached_params("d2", ttl=None)}])
    assert second["b"].message.usage.cache_read_input_tokens == 0
    assert second["b"].message.usage.cache_creation.ephemeral_5m_input_tokens > 0

    short_prompt = cached_params("d", rubric="short")
    short = run_batch(client, emu, [{"custom_id": f"s{i}", "params": short_prompt} for i in range(2)])
    for result in short.values():
        usage = result.message.usage
        assert usage.cache_creation_input_tokens == usage.cache_read_input_tokens == 0


def test_cache_minimum_is_per_model_and_overridable(emu: AnthropicEmulator, client: Anthropic) -> None:
    haiku = {**cached_params("d"), "model": "claude-haiku-4-5"}  # needs 4,096 tokens; the rubric has 1,500
    results = run_batch(client, emu, [{"custom_id": "a", "params": haiku}, {"custom_id": "b", "params": haiku}])
    assert results["b"].message.usage.cache_read_input_tokens == 0
    assert results["b"].message.usage.input_tokens == measure(haiku).total_tokens
    assert AnthropicEmulator(cache_min_tokens={MODEL: 100_000}).cache.min_tokens(MODEL) == 100_000


def test_two_breakpoints_read_the_shared_prefix(emu: AnthropicEmulator, client: Anthropic) -> None:
    def two(diff: str) -> dict[str, Any]:
        p = cached_params("")
        p["messages"] = [{"role": "user", "content": [
            {"type": "text", "text": "Repository guide. " * 300, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": diff},
        ]}]  # fmt: skip
        return p

    results = run_batch(client, emu, [{"custom_id": "a", "params": two("d1")}, {"custom_id": "b", "params": two("d2")}])
    a, b = results["a"].message.usage, results["b"].message.usage
    assert a.cache_creation.ephemeral_1h_input_tokens > 0 and a.cache_creation.ephemeral_5m_input_tokens > 0
    assert b.cache_read_input_tokens == a.cache_creation_input_tokens and b.cache_creation_input_tokens == 0


def test_no_cache_control_means_no_cache_fields(emu: AnthropicEmulator, client: Anthropic) -> None:
    results = run_batch(client, emu, requests_for("a", "b"))
    usage = results["b"].message.usage
    assert usage.cache_creation_input_tokens == usage.cache_read_input_tokens == 0
    assert usage.input_tokens == measure(params("review b")).total_tokens and usage.output_tokens > 0


# sync endpoints -------------------------------------------------------------------------------------------


def test_sync_messages_and_count_tokens(emu: AnthropicEmulator, client: Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=4000, messages=[{"role": "user", "content": DIFF}])
    assert message.usage.service_tier == "standard" and message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and "### Findings" in message.content[0].text
    assert emu.sync_messages[0]["messages"][0]["content"] == DIFF
    counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x" * 41}])
    assert counted.input_tokens == 11
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}])


def test_sync_max_tokens_cuts_the_answer(client: Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": DIFF}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5
    assert message.content[0].type == "text" and len(message.content[0].text) == 20


# the fake model ------------------------------------------------------------------------------------------


def test_forced_tool_use_reports_findings_on_new_side_lines(emu: AnthropicEmulator, client: Anthropic) -> None:
    tool = {"tools": [REVIEW_TOOL], "tool_choice": {"type": "tool", "name": "report_review"}}
    requests = [{"custom_id": f"r{i}", "params": params(f"PR {i}\n\n{DIFF}", **tool)} for i in range(9)]
    results = run_batch(client, emu, requests)
    off_diff = 0
    for result in results.values():
        message = result.message
        assert message.stop_reason == "tool_use" and len(message.content) == 1
        block = message.content[0]
        assert block.type == "tool_use" and block.name == "report_review" and block.id.startswith("toolu_")
        assert block.input["summary"]
        for finding in block.input["findings"]:
            assert finding["path"] == "app/users.py" and finding["severity"] in model.SEVERITIES
            assert finding["title"] and finding["body"]
            if finding["line"] not in ADDED_LINES:
                assert finding["line"] > 50  # outside every hunk
                off_diff += 1
        lines = {f["line"] for f in block.input["findings"]}
        assert {5, 7, 8, 9, 10, 11, 47, 49} <= lines
    assert 0 < off_diff < 9  # about every third request


def test_answers_are_deterministic_and_shaped() -> None:
    tool = {"tools": [REVIEW_TOOL], "tool_choice": {"type": "any"}}
    assert model.answer(params(DIFF, **tool)) == model.answer(params(DIFF, **tool))
    schema = {"type": "json_schema", "schema": REVIEW_TOOL["input_schema"]}
    blocks, stop = model.answer(params(DIFF, output_config={"format": schema}))
    assert stop == "end_turn" and {"summary", "findings"} == set(json.loads(blocks[0]["text"]))
    blocks, stop = model.answer(params("diff --git a/d.md b/d.md\n--- a/d.md\n+++ b/d.md\n@@ -1 +1 @@\n-a\n+b\n"))
    assert stop == "end_turn" and "no defects found" in blocks[0]["text"] and "`d.md`" in blocks[0]["text"]


def test_findings_are_concrete() -> None:
    findings = {f.line: f for f in model.review(model.parse_diff(DIFF), b"\x01")}
    assert findings[7].severity == "high" and "`name`" in findings[7].body
    assert findings[7].suggestion == """    cur.execute("SELECT * FROM users WHERE name = %s", (name,))"""
    assert findings[8].severity == "critical"
    assert findings[9].suggestion == """    r = requests.get("https://example.com/users", timeout=10)"""
    assert findings[10].suggestion == "    if r is None:"
    assert findings[11].suggestion == "        logger.debug(r)"
    assert findings[5].suggestion == "def find(conn, name, tags=None):"
    assert findings[47].suggestion == "            return yaml.safe_load(f)"
    assert findings[49].start_line == 48 and findings[49].severity == "medium"


def _numbered(diff: str, number: str, blank: str) -> str:
    """The diff with a new-side number column, the way a prompt template might print it."""
    out, new = [], 0
    for line in diff.splitlines():
        header = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)", line)
        if header:
            new = int(header.group(1))
        elif line[:1] in (" ", "+") and not line.startswith("+++"):
            line, new = number.format(n=new) + line, new + 1
        elif line[:1] == "-" and not line.startswith("---"):
            line = blank + line
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize(
    ("number", "blank"),
    [("{n:>5} ", "      "), ("{n:>4} | ", "     | "), ("{n}\t", "\t"), ("{n}: ", ""), ("{n:>6}  ", "        ")],
)
def test_number_columns_in_the_prompt_are_skipped(number: str, blank: str) -> None:
    def shape(diff: str) -> list[tuple[str, int | None, str]]:
        return [(line.kind, line.new_line, line.text) for f in model.parse_diff(diff) for line in f.lines]

    assert shape(_numbered(DIFF, number, blank)) == shape(DIFF)


# scale ----------------------------------------------------------------------------------------------------


def test_large_batch_is_linear(emu: AnthropicEmulator) -> None:
    """A batch at the API's maximum size set REVIEWER_BENCH_REQUESTS=100000; the default keeps the suite fast.
    Posted with plain httpx2 so that the SDK's request transform is not what is measured."""
    n = int(os.environ.get("REVIEWER_BENCH_REQUESTS", "10000"))
    body = {"requests": [{"custom_id": f"r{i}", "params": params(f"review {i}", max_tokens=100)} for i in range(n)]}
    started = time.perf_counter()
    with httpx2.Client(base_url=emu.url, headers={"x-api-key": KEY}, timeout=120) as http:
        created = http.post("/v1/messages/batches", json=body).json()
        emu.end_all()
        download = http.get(f"/v1/messages/batches/{created['id']}/results")
    elapsed = time.perf_counter() - started
    assert download.content.count(b"\n") == n
    assert elapsed < 30e-6 * n * 10  # ~30 us per request on a slow machine; quadratic work blows this
