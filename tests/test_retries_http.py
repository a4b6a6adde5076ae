"""Z.AI-aware retries through the real pipeline over HTTP: call counts, waits, headers, bodies.

The app runs in-process so that its waits are recorded exactly instead of slept; everything
else (HTTP on loopback, the fake upstream, the pipeline) is real.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
BASE = {"RATE_LIMIT_ENABLED": "false", "RETRY_BACKOFF_BASE": "1s", "MAX_RETRIES": "3"}


def _key() -> str:
    return uuid.uuid4().hex[:12]


def _post(proxy, scenario: str, path="/v1/chat/completions", body=CHAT, **kwargs):
    return requests.post(proxy.url + path, json=body, headers={"X-Fake-Scenario": scenario},
                         timeout=30, **kwargs)


def test_1302_concurrency_plain_retry_then_success(start_proxy, fake_zai):
    proxy = start_proxy(**BASE)
    response = _post(proxy, f"fail_first;n=2;key={_key()};code=1302")
    assert response.status_code == 200
    assert len(fake_zai.requests) == 3
    assert proxy.waits == [1.0, 2.0]                     # plain backoff 1 s, 2 s: no jitter
    assert proxy.value("zai_proxy_retry_attempts_total", reason="concurrency") == 2
    assert proxy.value("zai_proxy_zai_errors_total", **{"class": "concurrency",
                                                         "code": "1302"}) == 2
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="429") == 2


@pytest.mark.parametrize("code, error_class", [("1303", "frequency"), ("1305", "frequency"),
                                               ("1312", "congestion")])
def test_frequency_and_congestion_are_jittered(start_proxy, fake_zai, code, error_class):
    proxy = start_proxy(**BASE)
    response = _post(proxy, f"fail_first;n=3;key={_key()};code={code}")
    assert response.status_code == 200
    assert len(fake_zai.requests) == 4
    for attempt, wait in enumerate(proxy.waits):
        plain = 2 ** attempt
        assert plain / 2 <= wait < plain                  # jitter draws from [b/2, b)
    assert proxy.value("zai_proxy_retry_attempts_total", reason=error_class) == 3
    assert proxy.value("zai_proxy_zai_errors_total", **{"class": error_class, "code": code}) == 3


@pytest.mark.parametrize("code", ["1308", "1310"])
def test_quota_is_never_retried_and_the_final_429_is_annotated(start_proxy, fake_zai, code):
    proxy = start_proxy(**BASE)
    scenario = f"error;code={code};reset_time=2026-12-01%2010:00:00"
    direct = requests.post(fake_zai.url + "/api/paas/v4/chat/completions", json=CHAT,
                           headers={"X-Fake-Scenario": scenario})
    fake_zai.clear()
    response = _post(proxy, scenario)
    assert len(fake_zai.requests) == 1 and proxy.waits == []
    assert response.status_code == 429
    assert response.content == direct.content            # the upstream body, verbatim
    assert response.headers["X-Zai-Error-Class"] == "quota"
    assert response.headers["X-Zai-Error-Code"] == code
    # A naive "YYYY-MM-DD HH:MM:SS" is Beijing time (UTC+8).
    assert response.headers["X-Zai-Rate-Limit-Reset"] == "2026-12-01T02:00:00Z"
    assert response.headers["x-should-retry"] == "false"       # no SDK waits for the reset
    assert "Retry-After" not in response.headers
    assert proxy.value("zai_proxy_retry_attempts_total") == 0


def test_reset_time_given_only_in_the_message_text(start_proxy):
    proxy = start_proxy(**BASE)
    response = _post(proxy, "error;code=1308;reset_time=2026-12-01%2010:00:00;reset_field=0")
    assert "reset_time" not in response.json()["error"]
    assert response.headers["X-Zai-Rate-Limit-Reset"] == "2026-12-01T02:00:00Z"


def test_unknown_code_retries_conservatively_then_passes_the_429_through(start_proxy,
                                                                          fake_zai):
    proxy = start_proxy(**{**BASE, "MAX_RETRIES": "2"})
    response = _post(proxy, "error;status=429;code=1399;retry_after=2")
    assert response.status_code == 429
    assert len(fake_zai.requests) == 3
    assert proxy.waits == [3.0, 4.0]                     # advertised 2 s + backoff 1 s, 2 s
    assert response.headers["Retry-After"] == "2"        # the upstream's own, passed through
    assert response.headers["X-Zai-Error-Class"] == "unknown"
    assert proxy.value("zai_proxy_zai_errors_total", **{"class": "unknown", "code": "other"}) == 3
    assert proxy.value("zai_proxy_retry_attempts_total", reason="unknown") == 2


@pytest.mark.parametrize("advertised, expected", [
    ("retry_after=3", 3.0), ("body_retry_after=5", 5.0), ("retry_after=3;body_retry_after=4", 4.0),
])
def test_wait_is_the_largest_of_backoff_and_what_the_upstream_advertises(
        start_proxy, advertised, expected):
    proxy = start_proxy(**BASE)
    response = _post(proxy, f"fail_first;n=1;key={_key()};code=1302;{advertised}")
    assert response.status_code == 200
    assert proxy.waits == [expected]


def test_retry_after_as_an_http_date(start_proxy):
    proxy = start_proxy(**BASE)
    _post(proxy, f"fail_first;n=1;key={_key()};code=1302;retry_after=4;retry_after_date=1")
    [wait] = proxy.waits
    assert 2.0 <= wait <= 4.0                            # a date has one-second precision


def test_a_wait_longer_than_max_wait_is_not_made(start_proxy, fake_zai):
    proxy = start_proxy(**{**BASE, "RATE_LIMIT_MAX_WAIT": "30s"})
    response = _post(proxy, "error;code=1302;retry_after=120")
    assert response.status_code == 429
    assert len(fake_zai.requests) == 1 and proxy.waits == []
    assert response.headers["Retry-After"] == "120"


def test_network_errors_are_retried_with_backoff_then_502(start_proxy, fake_zai):
    proxy = start_proxy(**BASE)
    assert _post(proxy, f"fail_first;n=1;key={_key()};fail_with=reset_before").status_code == 200
    assert proxy.waits == [1.0]
    assert proxy.value("zai_proxy_retry_attempts_total", reason="network_error") == 1
    fake_zai.clear()
    response = _post(proxy, "reset_before")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_connection"
    assert len(fake_zai.requests) == 4
    assert proxy.waits == [1.0, 1.0, 2.0, 4.0]


@pytest.mark.parametrize("fault, reason, stream", [
    ("empty_200", "truncated_response", False),
    ("truncated_json", "truncated_response", False),
    ("empty_200", "empty_streaming", True),
])
def test_empty_or_cut_200s_are_not_sent_again(start_proxy, fake_zai, fault, reason, stream):
    # The upstream answered 200: it received the request and may have billed it.
    proxy = start_proxy(**BASE)
    failed = _post(proxy, fault, body={**CHAT, "stream": stream})
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == reason
    assert len(fake_zai.requests) == 1 and proxy.waits == []
    assert proxy.value("zai_proxy_retry_attempts_total") == 0
    assert proxy.value("zai_proxy_upstream_errors_total", error_type=reason) == 1


def test_nothing_is_retried_once_bytes_reached_the_client(start_proxy, fake_zai):
    proxy = start_proxy(**BASE)
    response = _post(proxy, "reset_mid;after=3", body={**CHAT, "stream": True})
    assert response.status_code == 200
    assert len(fake_zai.requests) == 1 and proxy.waits == []
    events = [e for e in response.content.split(b"\n\n") if e]
    assert len(events) == 4                               # three relayed, then the error event
    error = json.loads(events[-1].removeprefix(b"data: "))
    assert error["error"]["code"] == "read_error"
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="read_error") == 1


def test_anthropic_stream_failure_ends_with_an_anthropic_error_event(start_proxy):
    proxy = start_proxy(**BASE)
    response = _post(proxy, "reset_mid;after=3", path="/v1/messages",
                     body={**CHAT, "max_tokens": 10, "stream": True})
    last = [e for e in response.content.split(b"\n\n") if e][-1]
    assert last.startswith(b"event: error\ndata: ")
    payload = json.loads(last.split(b"data: ", 1)[1])
    assert payload["type"] == "error" and payload["error"]["type"] == "api_error"


def test_anthropic_529_overloaded_is_retried(start_proxy, fake_zai):
    proxy = start_proxy(**BASE)
    response = _post(proxy, f"fail_first;n=1;key={_key()};fail_with=status;code=529",
                     path="/v1/messages", body={**CHAT, "max_tokens": 10})
    assert response.status_code == 200 and len(fake_zai.requests) == 2
    assert proxy.value("zai_proxy_retry_attempts_total", reason="overloaded") == 1


def test_every_retry_re_acquires_admission(start_proxy, fake_zai):
    proxy = start_proxy(**{**BASE, "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_INITIAL": "50",
                               "RATE_LIMIT_MAX": "50"})
    assert _post(proxy, f"fail_first;n=2;key={_key()};code=1302").status_code == 200
    assert len(fake_zai.requests) == 3
    assert proxy.value("zai_proxy_rate_limit_wait_seconds_count") == 3
