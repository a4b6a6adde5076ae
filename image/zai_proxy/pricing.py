"""Price table (USD per 1M tokens) and Z.AI's peak/off-peak pricing tier.

Peak is 14:00-18:00 Asia/Shanghai (UTC+8 all year, no DST), when prices count double. The tier is
computed from the UTC timestamp with a fixed +8 h offset, so it never drifts with anyone's
daylight saving time.

TOKEN_PRICES (JSON `{model: {input, output, cache_read, cache_write}}`) is merged over the
built-in rows, so one model can be re-priced without restating the others. In a user row `input`
and `output` are required, `cache_read` and `cache_write` default to 0. Model names are matched
case-insensitively; an unknown model is priced with the `default` row (which TOKEN_PRICES may
override too). A bad table raises ConfigError (a ValueError) naming TOKEN_PRICES.
"""

from __future__ import annotations

import math

from .config import ConfigError

DIRECTIONS = ("input", "output", "cache_read", "cache_write")
PEAK_START_HOUR = 14
PEAK_END_HOUR = 18
SHANGHAI_OFFSET_SECONDS = 8 * 3600
PEAK_MULTIPLIER = 2.0


def _row(input_, output, cache_read, cache_write=0.0) -> dict:
    return {"input": input_, "output": output, "cache_read": cache_read,
            "cache_write": cache_write}


# Z.AI list prices as published when this was written; sources disagree, hence TOKEN_PRICES.
# Cached input costs about 1/5 of input; Z.AI does not charge cache writes.
DEFAULT_PRICES = {
    "glm-4.7": _row(0.60, 2.20, 0.11),
    "glm-4.6": _row(0.60, 2.20, 0.11),
    "glm-4.5": _row(0.60, 2.20, 0.11),
    "glm-4.5-air": _row(0.13, 0.85, 0.03),
    "default": _row(0.60, 2.20, 0.11),
}


def pricing_tier(now: float) -> str:
    """"peak" from 14:00:00 (inclusive) to 18:00:00 (exclusive) Shanghai time, else "off_peak"."""
    seconds_of_day = (math.floor(now) + SHANGHAI_OFFSET_SECONDS) % 86400
    hour = seconds_of_day // 3600
    return "peak" if PEAK_START_HOUR <= hour < PEAK_END_HOUR else "off_peak"


def _price(model: str, direction: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ConfigError(f"TOKEN_PRICES: {model}.{direction}={value!r} must be a non-negative "
                         "number (USD per 1M tokens)")
    return float(value)


def _validate(table) -> dict:
    if not isinstance(table, dict):
        raise ConfigError("TOKEN_PRICES must be a JSON object {model: {input, output, "
                         "cache_read, cache_write}} in USD per 1M tokens")
    rows = {}
    for model, row in table.items():
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"TOKEN_PRICES: model name {model!r} must be a non-empty string")
        if not isinstance(row, dict):
            raise ConfigError(f"TOKEN_PRICES: {model} must map to an object "
                             "{input, output, cache_read, cache_write}")
        unknown = sorted(set(row) - set(DIRECTIONS))
        if unknown:
            raise ConfigError(f"TOKEN_PRICES: {model} has unknown keys {unknown}; allowed: "
                             f"{', '.join(DIRECTIONS)}")
        missing = [key for key in ("input", "output") if key not in row]
        if missing:
            raise ConfigError(f"TOKEN_PRICES: {model} lacks {' and '.join(missing)}")
        rows[model.strip().lower()] = {
            direction: _price(model, direction, row.get(direction, 0.0))
            for direction in DIRECTIONS}
    return rows


class PriceTable:
    def __init__(self, table: dict | None = None):
        self.rows = {model: dict(row) for model, row in DEFAULT_PRICES.items()}
        if table is not None:
            self.rows.update(_validate(table))

    def row(self, model) -> dict:
        if isinstance(model, str):
            found = self.rows.get(model.lower())
            if found is not None:
                return found
        return self.rows["default"]

    def cost(self, model: str, direction: str, tokens: int, tier: str) -> float:
        """USD for `tokens` tokens of `direction`; peak-tier tokens cost double."""
        if direction not in DIRECTIONS:
            raise KeyError(f"unknown token direction {direction!r}")
        if tokens <= 0:
            return 0.0
        usd = self.row(model)[direction] * tokens / 1_000_000
        return usd * PEAK_MULTIPLIER if tier == "peak" else usd
