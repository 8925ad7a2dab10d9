"""The price table: entries matched by pattern and effective date, every token class priced on
its own, and a request with an unknown price counted as unpriced (never $0) in the totals."""

from __future__ import annotations

import pytest

from spacechat_plugin.config import PriceConfig, PriceRule, validate
from spacechat_plugin.operations.pricing import PriceTable

COUNTS = {"input_tokens": 1000, "output_tokens": 500, "cache_read_tokens": 0, "cache_write_tokens": 0}
TABLE = PriceTable(
    [
        PriceRule(match="gpt-4o*", input=5, output=15),
        PriceRule(match="gpt-4o*", effective_from="2024-08-06", input=2.5, output=10, cache_read=1.25),
        PriceRule(match="gpt-4o-mini*", input=0.15, output=0.6, cache_read=0.075),
        PriceRule(match="*claude-3-5-sonnet*", input=3, output=15, cache_read=0.3, cache_write=3.75, reasoning=20),
    ]
)


def test_patterns_match_with_and_without_the_provider_and_the_most_specific_wins() -> None:
    assert TABLE.find("gpt-4o-2024-11-20", "2025-01-01").match == "gpt-4o*"  # type: ignore[union-attr]
    assert TABLE.find("openai/GPT-4o-mini", "2025-01-01").match == "gpt-4o-mini*"  # type: ignore[union-attr]
    assert TABLE.find("anthropic/claude-3-5-sonnet-20241022", "2025-01-01") is not None
    assert TABLE.find("llama-3-70b", "2025-01-01") is None


def test_effective_dates_pick_the_price_in_force_that_day() -> None:
    assert TABLE.cost("gpt-4o", "2024-08-05", COUNTS) == pytest.approx((1000 * 5 + 500 * 15) / 1e6)
    assert TABLE.cost("gpt-4o", "2024-08-06", COUNTS) == pytest.approx((1000 * 2.5 + 500 * 10) / 1e6)


def test_cache_and_reasoning_tokens_have_their_own_prices() -> None:
    counts = {**COUNTS, "cache_read_tokens": 2000, "cache_write_tokens": 400, "reasoning_tokens": 100}
    expected = (1000 * 3 + 400 * 15 + 100 * 20 + 2000 * 0.3 + 400 * 3.75) / 1e6
    assert TABLE.cost("claude-3-5-sonnet-latest", "2025-01-01", counts) == pytest.approx(expected)


def test_a_token_class_without_a_price_makes_the_request_unpriced_never_free() -> None:
    cached = {**COUNTS, "cache_read_tokens": 2000}
    assert TABLE.cost("gpt-4o", "2024-01-01", cached) is None, "the old entry has no cache-read price"
    assert TABLE.cost("gpt-4o", "2024-09-01", cached) == pytest.approx((1000 * 2.5 + 500 * 10 + 2000 * 1.25) / 1e6)
    written = {**COUNTS, "cache_write_tokens": 10}
    assert TABLE.cost("gpt-4o", "2024-09-01", written) is None
    assert TABLE.cost("unknown-model", "2024-09-01", COUNTS) is None


def test_the_old_prefix_table_still_prices() -> None:
    legacy = PriceTable(legacy={"local-model": PriceConfig(input=1, output=2, cache_read=0.5)})
    counts = {"input_tokens": 20, "output_tokens": 12, "cache_read_tokens": 100, "cache_write_tokens": 0}
    assert legacy.cost("local-model-7b", "2026-01-01", counts) == pytest.approx((20 + 24 + 50) / 1e6)


def test_bad_entries_stop_start_up_naming_the_key() -> None:
    with pytest.raises(Exception, match=r"prices\.0\.effective_from"):
        validate({"prices": [{"match": "x*", "effective_from": "yesterday", "input": 1, "output": 1}]})
    with pytest.raises(Exception, match=r"prices\.0\.input"):
        validate({"prices": [{"match": "x*", "input": -1, "output": 1}]})
