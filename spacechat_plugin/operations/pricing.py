"""What an LLM request cost: the price table, matched by pattern and effective date.

Langfuse's users' most common complaint is cache reads priced wrong or at $0; so here every
token class has its own price, and a request that used a class whose price is not known is
*unpriced* (cost None, counted apart), never free. Entries (`[[prices]]`) match model names by a
glob pattern, case-insensitively, against the name with and without its `provider/` part; the most
specific matching pattern (the most literal characters) wins, and of its entries the newest in
effect at the request's time. The older `[pricing."<prefix>"]` table still
works: each key is a prefix pattern in effect from the start.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..config import PriceConfig, PriceRule

MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    match: str
    effective_from: str
    input: float
    output: float
    cache_read: float | None
    cache_write: float | None
    reasoning: float | None

    @property
    def specificity(self) -> int:
        return sum(1 for char in self.match if char not in "*?[]")


@lru_cache(maxsize=512)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob.lower()))


class PriceTable:
    def __init__(self, rules: Sequence[PriceRule] = (), legacy: Mapping[str, PriceConfig] | None = None) -> None:
        prices = [Price(**rule.model_dump()) for rule in rules]
        prices += [
            Price(match=f"{prefix}*", effective_from="1970-01-01", **rate.model_dump())
            for prefix, rate in (legacy or {}).items()
        ]
        # Most specific first, then newest: the first match in effect is the one that applies.
        self.prices = sorted(prices, key=lambda p: (p.specificity, p.effective_from), reverse=True)

    def find(self, model: str, day: str) -> Price | None:
        """The entry that prices `model` on `day` (YYYY-MM-DD), or None."""
        names = {model.lower(), model.split("/", 1)[-1].lower()}
        for price in self.prices:
            if price.effective_from <= day and any(_pattern(price.match).fullmatch(name) for name in names):
                return price
        return None

    def cost(self, model: str, day: str, counts: Mapping[str, int]) -> float | None:
        """USD for one request's token counts, or None when any class it used has no price.
        `input_tokens` excludes cache reads and writes; `reasoning_tokens` are part of
        `output_tokens`."""
        price = self.find(model, day)
        if price is None:
            return None
        reasoning = counts.get("reasoning_tokens", 0)
        parts = [
            (counts.get("input_tokens", 0), price.input),
            (max(0, counts.get("output_tokens", 0) - reasoning), price.output),
            (reasoning, price.reasoning if price.reasoning is not None else price.output),
            (counts.get("cache_read_tokens", 0), price.cache_read),
            (counts.get("cache_write_tokens", 0), price.cache_write),
        ]
        total = 0.0
        for tokens, rate in parts:
            if not tokens:
                continue
            if rate is None:
                return None
            total += tokens * rate
        return round(total / MILLION, 8)
