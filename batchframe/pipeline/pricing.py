"""What a row costs: the Batch Chat price table and the arithmetic.

Prices are CNY per million tokens at the real-time list price (Chinese Mainland), as collected in
November 2026 (see docs in README). Batch Chat bills successful requests at ``BATCH_DISCOUNT`` of
these. Prices are tiered by the input length of each request: the whole request is billed at its
tier. Thinking (reasoning) tokens are part of ``completion_tokens`` and billed as output.
A user can pass their own prices (already discounted: what they actually pay).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from ..exceptions import ConfigError

BATCH_DISCOUNT = 0.5
CURRENCY = "CNY"


@dataclasses.dataclass(frozen=True, slots=True)
class Tier:
    max_input_tokens: int  # this tier applies up to (and including) this many prompt tokens
    input: float           # per million tokens, list price
    output: float


# model -> tiers, ascending. Source: ../shared/reference/dashscope-facts.md (Nov 2026).
LIST_PRICES: dict[str, tuple[Tier, ...]] = {
    "qwen-flash": (Tier(128_000, 0.15, 1.5), Tier(256_000, 0.6, 6.0), Tier(1_000_000, 1.2, 12.0)),
    "qwen-plus": (Tier(128_000, 0.8, 2.0),),
    "qwen3-max": (Tier(32_000, 2.5, 10.0), Tier(128_000, 4.0, 16.0), Tier(256_000, 7.0, 28.0)),
    "qwen3.5-plus": (Tier(128_000, 0.8, 4.8), Tier(256_000, 2.0, 12.0)),
    "qwen3-vl-plus": (Tier(32_000, 1.0, 10.0), Tier(128_000, 1.5, 15.0), Tier(256_000, 3.0, 30.0)),
    "qwen3-vl-flash": (Tier(32_000, 0.15, 1.5),),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Prices:
    """Prices actually paid, per million tokens, for one model (tiers ascending)."""

    tiers: tuple[Tier, ...]
    source: str

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        if prompt_tokens is None or completion_tokens is None:
            return None
        tier = next((t for t in self.tiers if prompt_tokens <= t.max_input_tokens), self.tiers[-1])
        return (prompt_tokens * tier.input + completion_tokens * tier.output) / 1e6


def resolve_prices(model: str, prices: Mapping[str, float] | None, *, use_table: bool) -> Prices | None:
    """The prices for this run, or None when unknown (cost is then NA, with one note)."""
    if prices is not None:
        try:
            inp, out = float(prices["input"]), float(prices["output"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError("prices must look like {'input': 0.4, 'output': 1.0} "
                              "(per million tokens, as billed)") from None
        if inp < 0 or out < 0:
            raise ConfigError("prices must be >= 0")
        return Prices((Tier(10**12, inp, out),), "user")
    if not use_table or model not in LIST_PRICES:
        return None
    tiers = tuple(Tier(t.max_input_tokens, t.input * BATCH_DISCOUNT, t.output * BATCH_DISCOUNT)
                  for t in LIST_PRICES[model])
    return Prices(tiers, f"batchframe table (Nov 2026 list price x {BATCH_DISCOUNT})")
