"""Cost math against hand-computed figures for every model in the shipped price table."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from reviewer.budget import worst_case
from reviewer.config import Settings, settings_from_mapping
from reviewer.cost import Usage, cost_of, format_usd, load_price_table

TABLE = load_price_table()

# Hand-computed, in micro-USD, for 1,000,000 input + 100,000 output tokens (no cache), and for the same
# plus 200,000 tokens written to the 5-minute cache, 100,000 to the 1-hour cache and 400,000 read.
#   opus 5/25:  5,000,000 + 2,500,000 = 7,500,000;  + 1,250,000 + 1,000,000 + 200,000 = 9,950,000
#   sonnet 3/15: 3,000,000 + 1,500,000 = 4,500,000; + 750,000 + 600,000 + 120,000 = 5,970,000
#   haiku 1/5:  1,000,000 + 500,000 = 1,500,000;    + 250,000 + 200,000 + 40,000 = 1,990,000
#   opus 4.1 15/75: 15,000,000 + 7,500,000 = 22,500,000; + 3,750,000 + 3,000,000 + 600,000 = 29,850,000
#   sonnet 5 2/10: 2,000,000 + 1,000,000 = 3,000,000; + 500,000 + 400,000 + 80,000 = 3,980,000
FAMILY = {
    "opus": (7_500_000, 9_950_000),
    "sonnet": (4_500_000, 5_970_000),
    "haiku": (1_500_000, 1_990_000),
    "opus-old": (22_500_000, 29_850_000),
    "sonnet-5": (3_000_000, 3_980_000),
}
MODEL_FAMILY = {
    "claude-opus-4-8": "opus", "claude-opus-4-7": "opus", "claude-opus-4-6": "opus", "claude-opus-4-5": "opus",
    "claude-opus-4-5-20251101": "opus", "claude-opus-5": "opus", "claude-opus-4-1-20250805": "opus-old",
    "claude-sonnet-4-6": "sonnet", "claude-sonnet-4-5": "sonnet", "claude-sonnet-4-5-20250929": "sonnet",
    "claude-haiku-4-5": "haiku", "claude-haiku-4-5-20251001": "haiku", "claude-sonnet-5": "sonnet-5",
}
PLAIN = Usage(1_000_000, 100_000)
CACHED = Usage(1_000_000, 100_000, cache_creation_input_tokens=300_000, cache_read_input_tokens=400_000,
               cache_creation_5m_tokens=200_000, cache_creation_1h_tokens=100_000)


def test_every_shipped_model_has_a_hand_computed_case() -> None:
    assert set(MODEL_FAMILY) == set(TABLE.models)


@pytest.mark.parametrize("model", sorted(MODEL_FAMILY))
def test_cost_without_cache(model: str) -> None:
    standard = FAMILY[MODEL_FAMILY[model]][0]
    cost = cost_of(PLAIN, TABLE.price(model))
    assert (cost.standard_micro_usd, cost.charged_micro_usd, cost.cache_saved_micro_usd) == (standard, standard // 2, 0)
    assert cost_of(PLAIN, TABLE.price(model), batch=False).charged_micro_usd == standard


@pytest.mark.parametrize("model", sorted(MODEL_FAMILY))
def test_cost_with_cache_writes_and_reads(model: str) -> None:
    standard = FAMILY[MODEL_FAMILY[model]][1]
    cost = cost_of(CACHED, TABLE.price(model))
    assert (cost.standard_micro_usd, cost.charged_micro_usd) == (standard, standard // 2)


def test_cache_saving_is_what_the_cached_tokens_would_have_cost_uncached() -> None:
    # opus: 1,700,000 input tokens uncached = 8,500,000 + 2,500,000 output = 11,000,000 standard;
    # with the cache it is 9,950,000; batch halves both: saved (11,000,000 - 9,950,000) / 2 = 525,000.
    assert cost_of(CACHED, TABLE.price("claude-opus-4-7")).cache_saved_micro_usd == 525_000


def test_cache_creation_without_ttl_breakdown_is_priced_as_five_minutes() -> None:
    usage = Usage(0, 0, cache_creation_input_tokens=1000)
    assert cost_of(usage, TABLE.price("claude-sonnet-4-6"), batch=False).charged_micro_usd == 3750


def test_reference_workload() -> None:
    # 5,000 reviews of 20,000 input + 5,000 output tokens on Opus 4.7.
    one = cost_of(Usage(20_000, 5_000), TABLE.price("claude-opus-4-7"))
    assert format_usd(one.charged_micro_usd * 5000) == "$562.50"
    assert format_usd(one.standard_micro_usd * 5000) == "$1,125.00"


def test_rounding_happens_once_half_up() -> None:
    # 1 token at $0.50/MTok cache read * 0.1 ... : 3 read tokens on haiku = 3 * 0.1 = 0.3 µ$ standard.
    assert cost_of(Usage(0, 0, cache_read_input_tokens=3), TABLE.price("claude-haiku-4-5"), batch=False
                   ).charged_micro_usd == 0
    assert cost_of(Usage(0, 0, cache_read_input_tokens=5), TABLE.price("claude-haiku-4-5"), batch=False
                   ).charged_micro_usd == 1  # 0.5 rounds up


def _settings(**repo: object) -> Settings:
    return settings_from_mapping({"repositories": [{"name": "a/b", "model": "claude-opus-4-7", "max_tokens": 8192,
                                                    **repo}]}, "reviewer.yml", {}, Path("."))


@pytest.mark.parametrize("repo,batch,expected", [
    ({}, True, 50_000 + 102_400),  # all input at the batch price, output at max_tokens
    ({}, False, 100_000 + 204_800),  # the express lane: standard price
    ({"prompt_caching": True}, True, 100_000 + 102_400),  # every input token a 1-hour cache write (2x)
    ({"prompt_caching": True, "cache_ttl": "5m"}, True, 62_500 + 102_400),  # a 5-minute write (1.25x)
])
def test_worst_case_is_all_input_plus_max_tokens(repo: dict[str, object], batch: bool, expected: int) -> None:
    settings = _settings(**repo)
    assert worst_case(20_000, settings.repo("a/b"), settings, batch=batch) == expected


def test_price_overrides_replace_and_add_rows() -> None:
    table = load_price_table({"claude-opus-4-7": {"input": 4}, "my-proxy-model": {"input": 1, "output": 2}})
    assert table.price("claude-opus-4-7").input == Decimal(4)
    assert table.price("claude-opus-4-7").output == Decimal(25)
    assert table.price("my-proxy-model").batch_discount == Decimal("0.5")


def test_format_usd() -> None:
    assert format_usd(112_500, 4) == "$0.1125"
    assert format_usd(562_500_000) == "$562.50"
