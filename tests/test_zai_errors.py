"""zai_errors: every code class, every envelope, every reset-time form, and no exceptions."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zai_proxy.zai_errors import (BEIJING, ERROR_CLASSES, classify, code_class,
                                  parse_retry_after, reset_from_text, reset_time)

NOW = 1_800_000_000.0   # 2027-01-15T08:00:00Z


def zai(code, message="m", **extra) -> bytes:
    return json.dumps({"error": dict(code=code, message=message, **extra)}).encode()


@pytest.mark.parametrize("code,expected", [
    ("1000", "auth"), ("1001", "auth"), ("1002", "auth"), ("1004", "auth"),
    ("1110", "account"), ("1113", "account"), ("1121", "account"),
    ("1210", "bad_request"), ("1211", "bad_request"), ("1214", "bad_request"),
    ("1261", "bad_request"),
    ("1301", "content"), ("1302", "concurrency"), ("1303", "frequency"),
    ("1304", "daily_limit"), ("1305", "frequency"), ("1308", "quota"), ("1309", "account"),
    ("1310", "quota"), ("1311", "account"), ("1312", "congestion"), ("1313", "frequency"),
])
def test_every_known_code_has_its_class(code, expected):
    assert code_class(code) == expected
    error = classify(429, zai(code), {}, NOW)
    assert (error.error_class, error.code, error.message) == (expected, code, "m")
    assert error.error_class in ERROR_CLASSES


@pytest.mark.parametrize("status,expected", [
    (429, "unknown"), (401, "auth"), (403, "auth"), (400, "bad_request"), (404, "bad_request"),
    (434, "bad_request"), (500, "server"), (502, "server"), (503, "overloaded"),
    (529, "overloaded"), (200, "unknown"),
])
def test_unknown_or_missing_codes_fall_back_to_the_status(status, expected):
    assert classify(status, zai("1399"), {}, NOW).error_class == expected
    assert classify(status, zai("1399"), {}, NOW).code == "1399"
    assert classify(status, b"", {}, NOW).error_class == expected
    assert classify(status, b"<html>bad gateway</html>", {}, NOW).code is None


def test_envelopes():
    flat = json.dumps({"code": 1302, "msg": "High concurrency", "success": False}).encode()
    anthropic = json.dumps({"type": "error", "error": {
        "type": "rate_limit_error", "code": "1303", "message": "too frequent"}}).encode()
    assert (classify(429, flat, {}, NOW).error_class, classify(429, flat, {}, NOW).code,
            classify(429, flat, {}, NOW).message) == ("concurrency", "1302", "High concurrency")
    assert (classify(429, anthropic, {}, NOW).error_class,
            classify(429, anthropic, {}, NOW).code) == ("frequency", "1303")
    # The nested error wins over the top level.
    both = json.dumps({"code": 1302, "error": {"code": "1312", "message": "busy"}}).encode()
    assert classify(429, both, {}, NOW).code == "1312"


def test_anthropic_envelope_without_code():
    overloaded = json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                        "message": "Overloaded"}}).encode()
    assert classify(529, overloaded, {}, NOW).error_class == "overloaded"
    rate = json.dumps({"type": "error", "error": {"type": "rate_limit_error",
                                                  "message": "slow down"}}).encode()
    error = classify(429, rate, {}, NOW)
    assert (error.error_class, error.code, error.message) == ("unknown", None, "slow down")


def test_code_at_the_front_of_the_message_only_when_known():
    body = json.dumps({"error": {"message": "1302: High concurrency"}}).encode()
    assert classify(429, body, {}, NOW).code == "1302"
    prose = json.dumps({"error": {"message": "2024 was a good year"}}).encode()
    assert classify(429, prose, {}, NOW).code is None


@pytest.mark.parametrize("value", [1302, "1302", " 1302 ", 1302.0])
def test_code_as_number_or_string(value):
    body = json.dumps({"error": {"code": value}}).encode()
    assert classify(429, body, {}, NOW).code == "1302"


@pytest.mark.parametrize("value", [True, {"x": 1}, [1302], "13a2", "-1302", 13.02,
                                   "123456789012"])
def test_codes_that_are_not_codes(value):
    body = json.dumps({"error": {"code": value}}).encode()
    error = classify(429, body, {}, NOW)
    assert (error.code, error.error_class) == (None, "unknown")


# Retry-After --------------------------------------------------------------------------------
def test_retry_after_header_seconds_and_http_date():
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 2.5 ", NOW) == 2.5
    assert parse_retry_after("Fri, 15 Jan 2027 08:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Fri, 15 Jan 2027 07:59:00 GMT", NOW) == 0.0   # already past
    for bad in (None, "", "-3", "soon", "nan", "inf"):
        assert parse_retry_after(bad, NOW) is None


def test_retry_after_is_the_max_of_header_and_body():
    body = zai("1302", retry_after=12)
    assert classify(429, body, {"Retry-After": "5"}, NOW).retry_after == 12.0
    assert classify(429, body, {"retry-after": "20"}, NOW).retry_after == 20.0
    date = {"Retry-After": "Fri, 15 Jan 2027 08:01:00 GMT"}
    assert classify(429, zai("1302"), date, NOW).retry_after == 60.0
    assert classify(429, zai("1302", retryAfter="3.5"), {}, NOW).retry_after == 3.5
    assert classify(429, zai("1302"), {}, NOW).retry_after is None
    # Nonsense in the body is ignored, not believed.
    assert classify(429, zai("1302", retry_after=-4), {"Retry-After": "2"}, NOW).retry_after == 2


# Reset times ----------------------------------------------------------------------------------
RESET = datetime(2027, 1, 15, 13, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("key", ["reset_time", "resetTime", "reset_at", "resetAt",
                                 "next_reset_time", "nextResetTime"])
def test_reset_keys(key):
    assert classify(429, zai("1308", **{key: int(RESET)}), {}, NOW).reset_at == RESET


@pytest.mark.parametrize("value", [
    int(RESET), RESET, str(int(RESET)), int(RESET * 1000), str(int(RESET * 1000)),
    "2027-01-15T13:00:00Z", "2027-01-15T21:00:00+08:00", "2027-01-15T13:00:00.000+00:00",
    "2027-01-15 21:00:00", "2027-01-15T21:00:00",          # naive: Beijing time
])
def test_reset_value_forms(value):
    assert reset_time(value) == RESET


@pytest.mark.parametrize("value", [0, 12345, -1, 10**15, "tomorrow", "1900-01-01 00:00:00",
                                   True, None, [RESET], float("nan")])
def test_implausible_reset_values_are_absent(value):
    assert reset_time(value) is None


def test_reset_in_message_text():
    body = zai("1308", "Usage limit reached for 5 hour. Your limit will reset at "
               "2027-01-15 21:00:00")
    error = classify(429, body, {}, NOW)
    assert (error.error_class, error.reset_at) == ("quota", RESET)
    assert reset_from_text("resets 2027-01-15T13:00:00Z, sorry") == RESET
    assert reset_from_text("no date here") is None
    # A field wins over the text.
    body = zai("1310", "will reset at 2030-01-01 00:00:00", reset_time=int(RESET))
    assert classify(429, body, {}, NOW).reset_at == RESET


def test_flat_envelope_reset_and_retry_after():
    body = json.dumps({"code": 1308, "msg": "limit", "nextResetTime": int(RESET * 1000),
                       "retry_after": 9}).encode()
    error = classify(429, body, {}, NOW)
    assert (error.error_class, error.reset_at, error.retry_after) == ("quota", RESET, 9.0)


def test_beijing_is_utc_plus_8():
    assert BEIJING.utcoffset(None).total_seconds() == 8 * 3600


# Never raises ---------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    b"\xff\xfe\x00garbage", b"[1,2,3]", b"null", b'"string"', b"{" * 100_000,
    b"[" * 5000 + b"]" * 5000, b'{"error": null, "code": null}', b'{"error": "text"}',
    b"x" * 200_000, json.dumps({"error": {"code": "1302", "message": "m" * 10_000}}).encode(),
])
def test_hostile_bodies(body):
    error = classify(429, body, {"Retry-After": "\x00weird"}, NOW)
    assert error.error_class in ERROR_CLASSES
    assert error.message is None or len(error.message) <= 2000


@settings(max_examples=300, deadline=None)
@given(status=st.integers(100, 599), body=st.binary(max_size=300),
       header=st.one_of(st.none(), st.text(max_size=40)))
def test_classify_never_raises(status, body, header):
    error = classify(status, body, {} if header is None else {"Retry-After": header}, NOW)
    assert error.error_class in ERROR_CLASSES
    assert error.retry_after is None or error.retry_after >= 0


@settings(max_examples=200, deadline=None)
@given(payload=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["error", "code", "msg", "message", "reset_time", "retry_after",
                         "type", "nextResetTime"]), children, max_size=5),
    max_leaves=12))
def test_classify_never_raises_on_json(payload):
    body = json.dumps(payload, allow_nan=True).encode()
    assert classify(429, body, {}, NOW).error_class in ERROR_CLASSES
