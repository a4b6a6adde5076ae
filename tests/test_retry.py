"""retry: per-class decisions, exact waits (jitter injected), and what the client is told."""

from __future__ import annotations

import json

import pytest

from zai_proxy.retry import Decision, RetryPolicy, client_headers, should_retry_headers
from zai_proxy.zai_errors import ZaiError, classify

NOW = 1_800_000_000.0


def policy(rng=lambda: 0.5, max_retries=3, base=1.0, max_wait=30.0):
    return RetryPolicy(max_retries, base, rng=rng, max_wait=max_wait)


def err(cls, code=None, retry_after=None, reset_at=None):
    return ZaiError(cls, code, "m", retry_after, reset_at)


def test_network_errors_back_off_1_2_4_then_stop():
    p = policy()
    assert [p.on_network_error(a) for a in range(4)] == [
        Decision(True, 1.0, "network_error", False), Decision(True, 2.0, "network_error", False),
        Decision(True, 4.0, "network_error", False),
        Decision(False, 0.0, "network_error", False, client_wait=8.0)]
    assert policy(base=0.25).on_network_error(2).wait == 1.0


@pytest.mark.parametrize("kind", ["truncated_response", "empty_streaming", "bad_encoding",
                                  "upstream_timeout"])
def test_bad_successes_are_never_retried(kind):
    # The upstream answered 2xx: it received the request and may be billing it.
    p = policy(max_retries=10)
    assert [p.on_bad_success(a, kind) for a in range(3)] == [Decision(False, 0.0, kind, False)] * 3


@pytest.mark.parametrize("kind", ["upstream_reset", "upstream_protocol", "upstream_timeout",
                                  "upstream_connection"])
def test_a_transport_failure_after_the_status_line_is_never_retried(kind):
    p = policy(max_retries=10)
    assert p.on_transport_error(0, kind).retry is True
    assert p.on_transport_error(0, kind, answered=True) == Decision(False, 0.0, "network_error",
                                                                    False)


@pytest.mark.parametrize("cls", ["quota", "daily_limit", "auth", "account", "bad_request",
                                 "content", "server"])
def test_never_retried_classes(cls):
    d = policy().on_zai_error(0, err(cls, retry_after=1))
    assert (d.retry, d.wait, d.slow_down) == (False, 0.0, False)


def test_quota_codes_never_retried_even_with_budget_left():
    for code in ("1308", "1310"):
        e = classify(429, json.dumps({"error": {"code": code}}).encode(), {"Retry-After": "1"},
                     NOW)
        assert policy(max_retries=10).on_zai_error(0, e).retry is False


def test_concurrency_is_a_plain_retry_without_slowing_down():
    p = policy(rng=lambda: 0.0)
    assert [p.on_zai_error(a, err("concurrency", "1302")) for a in range(3)] == [
        Decision(True, 1.0, "concurrency", False), Decision(True, 2.0, "concurrency", False),
        Decision(True, 4.0, "concurrency", False)]


@pytest.mark.parametrize("u,expected", [(0.0, [0.5, 1.0, 2.0]), (0.5, [0.75, 1.5, 3.0]),
                                        (0.999, [0.9995, 1.999, 3.998])])
def test_frequency_is_jittered_in_half_to_full_backoff_and_slows_down(u, expected):
    p = policy(rng=lambda: u)
    decisions = [p.on_zai_error(a, err("frequency", "1303")) for a in range(3)]
    assert [d.wait for d in decisions] == pytest.approx(expected)
    assert all(d.retry and d.slow_down and d.reason == "frequency" for d in decisions)


def test_jitter_source_out_of_range_means_no_jitter():
    for bad in (1.0, -0.1, float("nan")):
        assert policy(rng=lambda: bad).on_zai_error(1, err("frequency")).wait == 1.0


def test_congestion_and_overloaded_are_jittered_without_slowing_down():
    p = policy(rng=lambda: 0.5)
    assert p.on_zai_error(1, err("congestion", "1312")) == Decision(True, 1.5, "congestion",
                                                                     False)
    assert p.on_zai_error(0, err("overloaded")) == Decision(True, 0.75, "overloaded", False)


def test_unknown_is_conservative_hint_plus_backoff_and_slows_down():
    p = policy()
    assert p.on_zai_error(0, err("unknown")) == Decision(True, 1.0, "unknown", True)
    assert p.on_zai_error(1, err("unknown", retry_after=5)) == Decision(True, 7.0, "unknown",
                                                                         True)


def test_wait_is_the_max_of_backoff_header_and_body():
    body = json.dumps({"error": {"code": "1302", "retry_after": 6}}).encode()
    p = policy()
    assert p.on_zai_error(0, classify(429, body, {"Retry-After": "3"}, NOW)).wait == 6.0
    assert p.on_zai_error(0, classify(429, body, {"Retry-After": "9"}, NOW)).wait == 9.0
    http_date = {"Retry-After": "Fri, 15 Jan 2027 08:00:08 GMT"}
    assert p.on_zai_error(0, classify(429, body, http_date, NOW)).wait == 8.0
    # The backoff wins when the hints are shorter.
    assert p.on_zai_error(3 - 1, classify(429, body, {"Retry-After": "1"}, NOW)).wait == 6.0
    assert policy(max_retries=5).on_zai_error(3, classify(429, body, {}, NOW)).wait == 8.0
    freq = json.dumps({"error": {"code": "1303"}}).encode()
    assert p.on_zai_error(0, classify(429, freq, {"Retry-After": "4"}, NOW)).wait == 4.0


def test_last_attempt_is_not_retried_but_still_slows_down():
    d = policy(max_retries=2).on_zai_error(2, err("frequency", "1305"))
    assert (d.retry, d.slow_down) == (False, True)
    assert policy(max_retries=0).on_zai_error(0, err("concurrency")).retry is False


def test_the_client_may_retry_after_the_wait_the_proxy_would_have_made_next():
    assert policy(max_retries=2).on_zai_error(2, err("concurrency")).client_wait == 4.0
    assert policy(max_retries=0).on_zai_error(0, err("concurrency")).client_wait == 1.0
    assert policy(max_retries=1, rng=lambda: 0.0).on_zai_error(
        1, err("overloaded")).client_wait == 1.0                        # jittered: [b/2, b)
    assert policy(max_retries=1).on_zai_error(1, err("unknown", retry_after=5)).client_wait == 7.0
    assert policy(max_retries=0).on_zai_error(0, err("concurrency", retry_after=9)).client_wait \
        == 9.0                                                          # never below the hint
    # Retried here, so the client is not told anything yet.
    assert policy().on_zai_error(0, err("concurrency")).client_wait is None


@pytest.mark.parametrize("cls", ["quota", "daily_limit", "auth", "account", "bad_request",
                                 "content", "server"])
def test_the_client_is_never_told_to_retry_a_class_never_retried_here(cls):
    assert policy(max_retries=0).on_zai_error(0, err(cls, retry_after=1)).client_wait is None


def test_waits_longer_than_max_wait_are_answered_instead():
    d = policy(max_wait=30).on_zai_error(0, err("concurrency", retry_after=120))
    assert (d.retry, d.reason, d.client_wait) == (False, "concurrency", None)
    assert policy(max_wait=30).on_zai_error(0, err("concurrency", retry_after=30)).retry


# What the client is told ----------------------------------------------------------------------
def _final(error, max_retries=0, **kwargs):
    return policy(max_retries=max_retries, **kwargs).on_zai_error(max_retries, error)


def test_a_quota_error_says_when_it_resets_and_not_to_retry():
    e = err("quota", "1308", reset_at=NOW + 3600.2)
    assert client_headers(e, _final(e), {"Content-Type": "application/json"}) == {
        "X-Zai-Error-Class": "quota", "X-Zai-Error-Code": "1308",
        "X-Zai-Rate-Limit-Reset": "2027-01-15T09:00:00Z", "x-should-retry": "false"}


def test_a_transient_error_says_to_retry_after_the_next_wait():
    e = err("concurrency", "1302")
    assert client_headers(e, _final(e, max_retries=3), {}) == {
        "X-Zai-Error-Class": "concurrency", "X-Zai-Error-Code": "1302",
        "x-should-retry": "true", "Retry-After": "8", "retry-after-ms": "8000"}
    fraction = err("unknown")
    assert client_headers(fraction, _final(fraction, base=0.01), None) == {
        "X-Zai-Error-Class": "unknown", "x-should-retry": "true", "Retry-After": "1",
        "retry-after-ms": "10"}


def test_the_upstreams_own_retry_after_is_kept():
    e = err("frequency", "1303", retry_after=5)
    headers = client_headers(e, _final(e, rng=lambda: 0.0), {"retry-after": "5"})
    assert headers == {"X-Zai-Error-Class": "frequency", "X-Zai-Error-Code": "1303",
                       "x-should-retry": "true", "retry-after-ms": "5000"}


def test_should_retry_headers_round_up_and_never_say_zero():
    assert should_retry_headers(None) == {"x-should-retry": "false"}
    assert should_retry_headers(0.0) == {"x-should-retry": "true", "Retry-After": "1",
                                         "retry-after-ms": "1"}
    assert should_retry_headers(2.2) == {"x-should-retry": "true", "Retry-After": "3",
                                         "retry-after-ms": "2200"}     # not 2200.0000000000005
    assert should_retry_headers(2.2001)["retry-after-ms"] == "2201"
    assert should_retry_headers(3.0, {"Retry-After-Ms": "3000"}) == {
        "x-should-retry": "true", "Retry-After": "3"}


def test_final_headers_from_a_real_body():
    body = json.dumps({"error": {"code": "1310", "message":
                                 "Weekly limit reached; it will reset at 2027-01-16 00:00:00"}})
    e = classify(429, body.encode(), {}, NOW)
    headers = client_headers(e, _final(e), {})
    assert headers["X-Zai-Rate-Limit-Reset"] == "2027-01-15T16:00:00Z"
    assert headers["x-should-retry"] == "false" and "Retry-After" not in headers
