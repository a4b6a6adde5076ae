"""Pricing tier edges (Shanghai time, no DST) and cost arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from zai_proxy.config import ConfigError
from zai_proxy.pricing import PriceTable, pricing_tier

SHANGHAI = timezone(timedelta(hours=8))


def at(day: str, clock: str) -> float:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=SHANGHAI).timestamp()


# January and July: the tier must not move with anyone's daylight saving time.
@pytest.mark.parametrize("day", ["2025-01-15", "2025-07-15"])
@pytest.mark.parametrize("clock,tier", [
    ("00:00:00", "off_peak"),
    ("13:59:59", "off_peak"),
    ("14:00:00", "peak"),
    ("15:30:00", "peak"),
    ("17:59:59", "peak"),
    ("18:00:00", "off_peak"),
    ("23:59:59", "off_peak"),
])
def test_pricing_tier_edges(day, clock, tier):
    assert pricing_tier(at(day, clock)) == tier


def test_pricing_tier_fractions_of_a_second():
    assert pricing_tier(at("2025-01-15", "13:59:59") + 0.999) == "off_peak"
    assert pricing_tier(at("2025-01-15", "17:59:59") + 0.999) == "peak"


def test_default_prices_per_million_tokens():
    prices = PriceTable()
    assert prices.cost("glm-4.7", "input", 1_000_000, "off_peak") == pytest.approx(0.60)
    assert prices.cost("glm-4.7", "output", 1_000_000, "off_peak") == pytest.approx(2.20)
    assert prices.cost("glm-4.7", "cache_read", 1_000_000, "off_peak") == pytest.approx(0.11)
    assert prices.cost("glm-4.7", "cache_write", 1_000_000, "off_peak") == 0.0
    for model in ("glm-4.6", "glm-4.5", "GLM-4.5"):
        assert prices.cost(model, "output", 1_000_000, "off_peak") == pytest.approx(2.20)
    assert prices.cost("glm-4.5-air", "input", 1_000_000, "off_peak") == pytest.approx(0.13)
    assert prices.cost("glm-4.5-air", "output", 1_000_000, "off_peak") == pytest.approx(0.85)


def test_cost_math_and_peak_doubles():
    prices = PriceTable()
    assert prices.cost("glm-4.7", "input", 1234, "off_peak") == pytest.approx(1234 * 0.60 / 1e6)
    assert prices.cost("glm-4.7", "output", 500_000, "peak") == pytest.approx(2.20)
    assert prices.cost("glm-4.7", "cache_read", 200, "peak") == pytest.approx(200 * 0.22 / 1e6)
    assert prices.cost("glm-4.7", "input", 0, "peak") == 0.0


def test_unknown_models_use_the_default_row():
    prices = PriceTable()
    assert prices.cost("glm-9-ultra", "output", 1_000_000, "off_peak") == pytest.approx(2.20)
    assert prices.cost(None, "input", 1_000_000, "off_peak") == pytest.approx(0.60)


def test_user_table_merges_over_the_defaults():
    prices = PriceTable({"GLM-4.7": {"input": 1.0, "output": 3, "cache_read": 0.2},
                         "my-model": {"input": 0.5, "output": 0.5},
                         "default": {"input": 9, "output": 9, "cache_read": 9,
                                     "cache_write": 9}})
    assert prices.cost("glm-4.7", "input", 1_000_000, "off_peak") == pytest.approx(1.0)
    assert prices.cost("glm-4.7", "cache_write", 1_000_000, "off_peak") == 0.0
    assert prices.cost("my-model", "cache_read", 1_000_000, "off_peak") == 0.0
    assert prices.cost("glm-4.5-air", "input", 1_000_000, "off_peak") == pytest.approx(0.13)
    assert prices.cost("unknown", "cache_write", 1_000_000, "peak") == pytest.approx(18.0)


@pytest.mark.parametrize("table,fragment", [
    ([1, 2], "must be a JSON object"),
    ({"glm-4.7": 0.6}, "glm-4.7 must map to an object"),
    ({"glm-4.7": {"input": 0.6, "outptu": 2.2}}, "unknown keys ['outptu']"),
    ({"glm-4.7": {"input": 0.6}}, "glm-4.7 lacks output"),
    ({"glm-4.7": {"input": -1, "output": 2.2}}, "glm-4.7.input=-1"),
    ({"glm-4.7": {"input": "0.6", "output": 2.2}}, "glm-4.7.input='0.6'"),
    ({"glm-4.7": {"input": True, "output": 2.2}}, "glm-4.7.input=True"),
    ({"glm-4.7": {"input": float("nan"), "output": 2.2}}, "glm-4.7.input=nan"),
    ({"": {"input": 1, "output": 1}}, "model name ''"),
])
def test_bad_user_tables_are_refused_naming_token_prices(table, fragment):
    with pytest.raises(ConfigError) as caught:  # a ValueError, reported at start-up
        PriceTable(table)
    assert "TOKEN_PRICES" in str(caught.value)
    assert fragment in str(caught.value)


def test_unknown_direction_is_a_programming_error():
    with pytest.raises(KeyError):
        PriceTable().cost("glm-4.7", "thinking", 10, "peak")
