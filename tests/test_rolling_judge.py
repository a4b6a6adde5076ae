"""How the rolling-restart row judges each answer: a 503 with Retry-After in either family's
format (draining, or at capacity while a peer worker restarts) is an answer, not a failure."""

from __future__ import annotations

import json

from tools.reliability.rolling import Result, judge


def _503(error: dict, retry_after: str = "1") -> Result:
    return Result("openai whole", False, 0.0, 1.0, 503, False, False, "", retry_after,
                  json.dumps({"error": error}).encode())


def test_draining_and_capacity_answers_with_retry_after_are_accepted():
    verdict = judge([_503({"code": "draining"}), _503({"code": "at_capacity"}),
                     _503({"type": "overloaded_error"})], master_at=10.0)
    assert verdict["problems"] == [] and verdict["draining"] == 3


def test_a_503_without_retry_after_or_of_another_kind_fails_and_says_what_it_was():
    verdict = judge([_503({"code": "at_capacity"}, retry_after=""), _503({"code": "other"})],
                    master_at=10.0)
    assert verdict["problems"] == ["2 requests failed before the master's SIGTERM: "
                                   "openai whole (503, at_capacity, no Retry-After), "
                                   "openai whole (503, other)"]
