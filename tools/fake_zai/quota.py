"""The quota endpoint (`GET /api/monitor/usage/quota/limit`): Z.AI's payload shape, with values a
test sets through `FakeZai.set_quota()` or `POST /_fake/quota`."""

from __future__ import annotations

import time

FIVE_HOUR_UNIT = 3
WEEKLY_UNIT = 6


def limit(unit: int, allowance: int, used: int, reset_ms: int,
          kind: str = "TOKENS_LIMIT") -> dict:
    """One `data.limits[]` entry: `usage` is the allowance, `currentValue` what is used."""
    return {
        "type": kind,
        "unit": unit,
        "number": 5 if unit == FIVE_HOUR_UNIT else 1,
        "usage": allowance,
        "currentValue": used,
        "remaining": max(allowance - used, 0),
        "percentage": round(100 * used / allowance) if allowance else 0,
        "nextResetTime": reset_ms,
    }


def payload(limits: list[dict]) -> dict:
    return {"code": 200, "msg": "Operation successful", "success": True,
            "data": {"limits": limits}}


def default_payload(now: float | None = None) -> dict:
    """A quarter of both windows used; resets 2 h (five-hour) and 3 days (weekly) from `now`."""
    now_ms = int((time.time() if now is None else now)) * 1000
    return payload([
        limit(FIVE_HOUR_UNIT, 40_000_000, 10_000_000, now_ms + 2 * 3600 * 1000),
        limit(WEEKLY_UNIT, 400_000_000, 100_000_000, now_ms + 3 * 86400 * 1000),
    ])
