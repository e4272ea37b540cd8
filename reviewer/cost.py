"""Cost math, pure: a price table row plus a result's token usage gives integer micro-USD, for the
Message Batches API and for the standard API that the same usage would have cost.

Prices are USD per million tokens, so one token at $P/MTok costs exactly P micro-USD. Everything is
computed in Decimal and rounded once (half up) to whole micro-USD, which both SQLite and PostgreSQL
store exactly as integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

MICRO = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    input: Decimal
    output: Decimal
    batch_discount: Decimal = Decimal("0.5")
    cache_write_5m: Decimal = Decimal("1.25")
    cache_write_1h: Decimal = Decimal("2")
    cache_read: Decimal = Decimal("0.1")
    context_window: int = 200_000
    min_cacheable_tokens: int = 1024


@dataclass(frozen=True)
class PriceTable:
    published: str
    models: Mapping[str, Price]

    def price(self, model: str) -> Price:
        return self.models[model]


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_5m_tokens: int | None = None  # the API breaks creation out by TTL when it can
    cache_creation_1h_tokens: int | None = None

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


@dataclass(frozen=True)
class Cost:
    charged_micro_usd: int
    standard_micro_usd: int
    cache_saved_micro_usd: int  # what the cached tokens would have cost as plain input, minus what they cost


def _cache_write_split(usage: Usage) -> tuple[int, int]:
    five, hour = usage.cache_creation_5m_tokens, usage.cache_creation_1h_tokens
    if five is None and hour is None:
        return usage.cache_creation_input_tokens, 0  # no breakdown: the default TTL is 5 minutes
    return five or 0, hour or 0


def _list_price(usage: Usage, price: Price) -> Decimal:
    """Undiscounted cost of `usage` in micro-USD, before rounding."""
    write_5m, write_1h = _cache_write_split(usage)
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + write_5m * price.input * price.cache_write_5m
        + write_1h * price.input * price.cache_write_1h
        + usage.cache_read_input_tokens * price.input * price.cache_read
    )


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cost_of(usage: Usage, price: Price, *, batch: bool = True) -> Cost:
    """What `usage` cost (batch price if `batch`, else standard) and what the standard API charges."""
    standard = _list_price(usage, price)
    charged = standard * price.batch_discount if batch else standard
    uncached = _list_price(
        Usage(usage.total_input_tokens, usage.output_tokens), price
    ) * (price.batch_discount if batch else Decimal(1))
    return Cost(_round(charged), _round(standard), _round(uncached - charged))


def format_usd(micro_usd: int, places: int = 2) -> str:
    value = (Decimal(micro_usd) / MICRO).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"${value:,}"


def _price_from(row: Mapping[str, Any], defaults: Mapping[str, Any]) -> Price:
    merged = {**defaults, **row}
    decimal_keys = ("input", "output", "batch_discount", "cache_write_5m", "cache_write_1h", "cache_read")
    values: dict[str, Any] = {k: Decimal(str(merged[k])) for k in decimal_keys if k in merged}
    for key in ("context_window", "min_cacheable_tokens"):
        if key in merged:
            values[key] = int(merged[key])
    return Price(**values)


def load_price_table(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PriceTable:
    """The shipped table, with rows of `overrides` (from reviewer.yml) replacing or adding models."""
    import yaml  # here, not at the top: the review text needs format_usd, not a YAML parser

    raw = yaml.safe_load(resources.files("reviewer").joinpath("data/prices.yml").read_text())
    defaults = raw["defaults"]
    models = {name: _price_from(row, defaults) for name, row in raw["models"].items()}
    for name, row in (overrides or {}).items():
        base = raw["models"].get(name, {})
        models[name] = _price_from({**base, **row}, defaults)
    return PriceTable(str(raw["published"]), models)
