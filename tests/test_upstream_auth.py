"""A wrong ZAI_API_KEY is the operator's mistake: made visible, and never blamed on the client.

Z.AI refusing the proxy's own key (401/403, or an auth code 1000–1004 whatever the status) gives
the client the proxy's 502 `upstream_auth_failed` (not the 401 it would read as "my proxy key is
wrong"), counts `zai_proxy_zai_errors_total{class="auth"}`, logs an error once per period rather
than once per request, and shows in /health until Z.AI accepts the key again.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests

from tools.sdks import anthropic, anthropic_client, openai, openai_client
from tools.proxy_process import TEST_ZAI_KEY
from zai_proxy.upstream_auth import UpstreamAuth

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
SETTINGS = {"RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "info"}


def _events(lines, event):
    return [line for line in lines if line.get("event") == event]


def _requests(lines):
    return [line for line in lines if line.get("logger") == "zai_proxy.request"]


@pytest.mark.parametrize("path, scenario, status, code", [
    ("/v1/chat/completions", "error;code=1002", 401, "1002"),
    ("/v1/messages", "error;code=1000;envelope=anthropic", 401, None),
    ("/v1/chat/completions", "error;code=1001;status=429", 429, "1001"),
    ("/v1/chat/completions", "status;code=403;body=html", 403, None),
])
def test_a_refused_key_is_a_502_counted_logged_once_and_in_health(inprocess_proxy, fake_zai, path,
                                                                  scenario, status, code):
    proxy = inprocess_proxy(**SETTINGS)
    answers = [requests.post(proxy.url + path, json={**CHAT, "max_tokens": 8},
                             headers={"X-Fake-Scenario": scenario}, timeout=30)
               for _ in range(5)]
    for answer in answers:
        assert answer.status_code == 502
        assert answer.headers["x-should-retry"] == "false"
        assert answer.headers["X-Zai-Error-Class"] == "auth"
        assert answer.headers.get("X-Zai-Error-Code") == code
        error = answer.json()["error"]
        assert "ZAI_API_KEY" in error["message"] and TEST_ZAI_KEY not in answer.text
        if path == "/v1/messages":
            assert answer.json()["type"] == "error" and error["type"] == "api_error"
        else:
            assert error["code"] == "upstream_auth_failed"
    assert len(fake_zai.requests) == 5                       # never retried
    assert proxy.value("zai_proxy_zai_errors_total", **{"class": "auth"}) == 5
    assert proxy.value("zai_proxy_upstream_errors_total", error_type=str(status)) == 5

    lines = proxy.wait_for_log_lines(until=lambda lines: len(_requests(lines)) == 5)
    [refused] = _events(lines, "upstream_auth_refused")     # once, not once per request
    assert refused["level"] == "error" and refused["upstream_status"] == status
    assert refused["zai_code"] == code and "ZAI_API_KEY" in refused["msg"]
    assert {line["outcome"] for line in _requests(lines)} == {"upstream_auth_failed"}
    assert TEST_ZAI_KEY not in "".join(json.dumps(line) for line in lines)

    health = requests.get(proxy.url + "/health").json()["upstream_auth"]
    assert health["status"] == "refused"
    assert (health["refused_requests"], health["refused_since_accepted"]) == (5, 5)
    assert (health["last_refused_status"], health["last_refused_code"]) == (status, code)
    assert health["last_refused_at"].endswith("Z")


def test_the_key_accepted_again_is_said_once_and_health_follows(inprocess_proxy, fake_zai):
    proxy = inprocess_proxy(**SETTINGS)
    assert requests.get(proxy.url + "/health").json()["upstream_auth"]["status"] == "unknown"
    fake_zai.set_scenario("error;code=1002")
    for _ in range(3):
        requests.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=30)
    fake_zai.set_scenario("ok")
    for _ in range(2):
        assert requests.post(proxy.url + "/v1/chat/completions", json=CHAT,
                             timeout=30).status_code == 200
    lines = proxy.wait_for_log_lines(until=lambda lines: len(_requests(lines)) == 5)
    assert len(_events(lines, "upstream_auth_refused")) == 1
    [accepted] = _events(lines, "upstream_auth_accepted")
    assert accepted["level"] == "warning" and accepted["refused_requests"] == 3
    health = requests.get(proxy.url + "/health").json()["upstream_auth"]
    assert (health["status"], health["refused_requests"], health["refused_since_accepted"]) == \
        ("accepted", 3, 0)
    assert health["accepted_since"].endswith("Z")


def test_sdk_users_can_tell_the_operators_key_from_their_own(inprocess_proxy, fake_zai):
    proxy = inprocess_proxy(**SETTINGS, PROXY_API_KEYS="client-key")
    fake_zai.set_scenario("error;code=1002")
    # Their own key is wrong: 401 invalid_api_key, whatever Z.AI would say.
    with pytest.raises(openai.AuthenticationError) as own:
        openai_client(base_url=proxy.url + "/v1", api_key="wrong").chat.completions.create(
            model="glm-4.7", messages=CHAT["messages"])
    assert own.value.code == "invalid_api_key"
    assert fake_zai.requests == []
    # Their key is right, the proxy's is not: a gateway error that says so, and no retry.
    with pytest.raises(openai.InternalServerError) as gateway:
        openai_client(base_url=proxy.url + "/v1", api_key="client-key").chat.completions.create(
            model="glm-4.7", messages=CHAT["messages"])
    assert gateway.value.status_code == 502 and gateway.value.code == "upstream_auth_failed"
    with pytest.raises(anthropic.InternalServerError) as anthropic_gateway:
        anthropic_client(base_url=proxy.url, api_key="client-key").messages.create(
            model="glm-4.7", max_tokens=8, messages=CHAT["messages"])
    assert "ZAI_API_KEY" in anthropic_gateway.value.message
    assert len(fake_zai.requests) == 2                       # one call each: no SDK retry


# The log gate, on an injected clock -----------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_error_line_comes_once_per_period_and_counts_what_it_held_back(caplog):
    caplog.set_level(logging.INFO, logger="zai_proxy.upstream_auth")
    clock = Clock()
    auth = UpstreamAuth(period=60, clock=clock, wall=lambda: 1_800_000_000.0)
    for _ in range(4):
        auth.refused(401, "1002")
        clock.now += 10
    clock.now += 30                                         # 70 s after the first line
    auth.refused(401, "1002")
    lines = [r for r in caplog.records if r.name == "zai_proxy.upstream_auth"]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.ERROR]
    assert [r.fields["refused_since_last_line"] for r in lines] == [0, 3]
    assert "3 more refused since the last line" in lines[1].getMessage()
    assert auth.snapshot()["refused_requests"] == 5
    assert auth.snapshot()["last_refused_at"] == "2027-01-15T08:00:00Z"


def test_acceptance_is_cheap_and_said_only_after_a_refusal(caplog):
    caplog.set_level(logging.INFO, logger="zai_proxy.upstream_auth")
    auth = UpstreamAuth()
    auth.accepted()
    auth.accepted()
    assert auth.state == "accepted" and caplog.records == []
    auth.refused(403, None)
    auth.accepted()
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING]
    assert auth.snapshot()["refused_since_accepted"] == 0
