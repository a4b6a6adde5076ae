"""The official OpenAI and Anthropic SDKs, on their default retry settings, against the proxy.

For every Z.AI error class the fake upstream can produce: what the SDK raised, how many times it
called the proxy, how many upstream calls that cost, and what it was told to wait. Where
retrying cannot help (quota, balance and account, auth, bad requests, content) the SDK must give
up at once; an upstream 5xx is left to the SDK's own policy; where it can (concurrency, frequency, congestion, overloaded, an
unknown 429, the proxy's own 503 and 429) it must retry after the proxy's short hint.

The proxy retries once (MAX_RETRIES=1) with a 10 ms backoff, so its hints are tens of
milliseconds; its own waits are recorded instead of slept (tests/inprocess.py). The SDKs really
sleep, but a wrapper around their `_calculate_retry_timeout` records every wait they choose and
stops the test at once when one is longer than LONG_WAIT, so a regression fails in a second
instead of hanging for hours.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import pytest
import requests

from tools.sdks import anthropic, anthropic_client, openai, openai_client
from tools.raw_upstream import RawUpstream, Wait, response

LONG_WAIT = 5.0
SDK_ATTEMPTS = 3            # both SDKs: the first call and 2 retries (DEFAULT_MAX_RETRIES)
PROXY_ATTEMPTS = 2          # MAX_RETRIES=1
SETTINGS = {"RATE_LIMIT_ENABLED": "false", "MAX_RETRIES": "1", "RETRY_BACKOFF_BASE": "10ms"}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def shared_upstream():
    from tools.fake_zai import FakeZai
    with FakeZai() as fake:
        yield fake


@pytest.fixture(scope="module")
def shared_app(shared_upstream):
    from tests.inprocess import InProcessProxy
    proxy = InProcessProxy(shared_upstream.url, **SETTINGS)
    yield proxy
    proxy.stop()


@pytest.fixture
def shared(shared_app, shared_upstream):
    """(proxy, fake upstream) with SETTINGS, shared by this module's tests: the recorded requests
    and waits start empty; metrics are not read from it."""
    shared_upstream.clear()
    shared_app.waits.clear()
    return shared_app, shared_upstream


class TooLongWait(Exception):
    """The SDK decided to sleep longer than LONG_WAIT before its next attempt."""


class Waits(list):
    """The waits an SDK client chose between attempts, and the headers it chose each from."""

    def __init__(self):
        super().__init__()
        self.headers: list[dict] = []


def _watch_waits(client) -> Waits:
    """The waits `client` chooses between attempts, recorded; a long one ends the call."""
    waits = Waits()
    choose = client._calculate_retry_timeout

    def recorded(remaining_retries, options, response_headers=None):
        wait = choose(remaining_retries, options, response_headers)
        waits.append(wait)
        waits.headers.append(dict(response_headers or {}))
        if wait > LONG_WAIT:
            raise TooLongWait(f"the SDK would wait {wait:g} s")
        return wait

    client._calculate_retry_timeout = recorded
    return waits


def _openai(proxy):
    client = openai_client(base_url=proxy.url + "/v1", api_key="client-key")
    return client, _watch_waits(client)


def _anthropic(proxy):
    client = anthropic_client(base_url=proxy.url, api_key="client-key")
    return client, _watch_waits(client)


def _call(family: str, client, scenario: str | None = None):
    headers = {"X-Fake-Scenario": scenario} if scenario else {}
    if family == "openai":
        return client.chat.completions.create(model="glm-4.7", messages=MESSAGES,
                                              extra_headers=headers)
    return client.messages.create(model="glm-4.7", max_tokens=16, messages=MESSAGES,
                                  extra_headers=headers)


def _client(family: str, proxy):
    return _openai(proxy) if family == "openai" else _anthropic(proxy)


def _in_5_hours() -> int:
    return int(time.time()) + 5 * 3600


def _raised(family: str, client, scenario: str) -> Exception:
    try:
        _call(family, client, scenario)
    except TooLongWait:
        raise
    except Exception as exc:    # noqa: BLE001 - the SDK's error is what the test is about
        return exc
    raise AssertionError("the call succeeded")


# Retrying cannot help: the SDK gives up at once ------------------------------------------------
HOPELESS = {
    # scenario: (status, X-Zai-Error-Class)
    "error;code=1308;reset_time={in_5_hours}": (429, "quota"),
    "error;code=1310": (429, "quota"),
    "error;code=1304": (429, "daily_limit"),
    # The upstream refused the proxy's own key: a gateway failure no client can fix.
    "error;code=1002": (502, "auth"),
    "error;code=1001;status=429": (502, "auth"),
    "status;code=401": (502, "auth"),
    "status;code=403": (502, "auth"),
    "error;code=1113": (429, "account"),
    "error;code=1309": (429, "account"),
    "error;code=1311": (429, "account"),
    "error;code=1214": (400, "bad_request"),
    "error;code=1261": (400, "bad_request"),
    "error;code=1301": (400, "content"),
}


@pytest.mark.parametrize("family", ["openai", "anthropic"])
@pytest.mark.parametrize("scenario", list(HOPELESS))
def test_sdks_give_up_at_once_where_retrying_cannot_help(shared, family, scenario):
    proxy, fake_zai = shared
    status, error_class = HOPELESS[scenario]
    client, waits = _client(family, proxy)
    error = _raised(family, client, scenario.format(in_5_hours=_in_5_hours()))
    assert isinstance(error, (openai.APIStatusError, anthropic.APIStatusError)), error
    assert error.status_code == status
    assert waits == []                                    # no retry, no wait
    assert len(fake_zai.requests) == 1                    # one upstream call per SDK call
    headers = error.response.headers
    assert headers["x-should-retry"] == "false"
    assert headers["x-zai-error-class"] == error_class
    assert "retry-after" not in headers and "retry-after-ms" not in headers
    assert proxy.waits == []


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_the_quota_reset_stays_visible_without_a_wait_of_hours(shared, family):
    proxy, fake_zai = shared
    client, waits = _client(family, proxy)
    reset = _in_5_hours()
    error = _raised(family, client, f"error;code=1308;reset_time={reset}")
    assert isinstance(error, (openai.RateLimitError, anthropic.RateLimitError))
    assert error.response.headers["x-zai-rate-limit-reset"] == datetime.fromtimestamp(
        reset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error.response.headers["x-zai-error-code"] == "1308"
    assert "retry-after" not in error.response.headers     # not "wait 18000 s"
    assert waits == [] and len(fake_zai.requests) == 1


# An upstream 5xx: the proxy does not send it again (it was answered), nor does it tell the
# client retrying is hopeless: the SDK's own policy (retry 5xx with backoff) decides.
@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_an_upstream_server_error_is_left_to_the_sdks_own_policy(shared, family):
    proxy, fake_zai = shared
    client, waits = _client(family, proxy)
    error = _raised(family, client, "status;code=500")
    assert isinstance(error, (openai.InternalServerError, anthropic.InternalServerError)), error
    headers = error.response.headers
    assert "x-should-retry" not in headers and "retry-after-ms" not in headers
    assert headers["x-zai-error-class"] == "server"
    assert len(waits) == SDK_ATTEMPTS - 1                 # the SDK retried on its own backoff
    assert len(fake_zai.requests) == SDK_ATTEMPTS         # the proxy never sent one again
    assert proxy.waits == []


@pytest.mark.parametrize("scenario", ["status;code=502;body=html", "status;code=504;body=empty"])
def test_other_upstream_server_errors_carry_no_retry_verdict(shared, scenario):
    proxy, fake_zai = shared
    answer = requests.post(proxy.url + "/v1/chat/completions", json={
        "model": "glm-4.7", "messages": MESSAGES}, headers={"X-Fake-Scenario": scenario},
        timeout=10)
    assert answer.status_code == int(scenario.split("code=")[1][:3])
    assert answer.headers["x-zai-error-class"] == "server"
    assert "x-should-retry" not in answer.headers
    assert len(fake_zai.requests) == 1


# Retrying can help: the SDK retries after the proxy's hint -----------------------------------
TRANSIENT = {
    # scenario: (status the SDK finally raises, X-Zai-Error-Class)
    "error;code=1302": (429, "concurrency"),
    "error;code=1303": (429, "frequency"),
    "error;code=1305": (429, "frequency"),
    "error;code=1313": (429, "frequency"),
    "error;code=1312": (429, "congestion"),
    "error;code=1399": (429, "unknown"),
    "status;code=503": (503, "overloaded"),
    "status;code=529": (529, "overloaded"),
}


@pytest.mark.parametrize("family", ["openai", "anthropic"])
@pytest.mark.parametrize("scenario", list(TRANSIENT))
def test_sdks_retry_transient_errors_after_the_proxys_short_hint(shared, family, scenario):
    proxy, fake_zai = shared
    status, error_class = TRANSIENT[scenario]
    client, waits = _client(family, proxy)
    error = _raised(family, client, scenario)
    assert isinstance(error, (openai.APIStatusError, anthropic.APIStatusError)), error
    assert error.status_code == status
    headers = error.response.headers
    assert headers["x-should-retry"] == "true"
    assert headers["x-zai-error-class"] == error_class
    hint = int(headers["retry-after-ms"]) / 1000
    assert 0 < hint <= 0.1                 # the proxy's next wait: 10 ms backoff, 2nd attempt
    assert headers["retry-after"] == "1"   # whole seconds for clients that read only this one
    assert len(waits) == SDK_ATTEMPTS - 1
    assert all(0 < wait <= 0.1 for wait in waits)     # each SDK call's own hint
    assert len(fake_zai.requests) == SDK_ATTEMPTS * PROXY_ATTEMPTS
    assert len(proxy.waits) == SDK_ATTEMPTS   # the proxy's own retry, once per SDK call


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_an_sdk_retry_of_a_transient_error_can_succeed(shared, family):
    proxy, fake_zai = shared
    client, waits = _client(family, proxy)
    # Both of the proxy's attempts of the first SDK call draw 1302; the SDK's retry succeeds.
    answer = _call(family, client, f"fail_first;n=2;key=sdk-{family};code=1302")
    assert answer.model.startswith("glm-4.7")
    assert len(waits) == 1 and waits[0] <= 0.1
    assert len(fake_zai.requests) == 3


def test_the_upstreams_own_retry_after_is_kept_and_the_hint_never_shorter(shared):
    proxy, fake_zai = shared
    client, waits = _openai(proxy)
    error = _raised("openai", client, "error;code=1302;retry_after=0.3")
    headers = error.response.headers
    assert headers["retry-after"] == "0.3"              # the upstream's, verbatim
    assert headers["retry-after-ms"] == "300"           # max(advertised, backoff)
    assert waits == [0.3, 0.3]
    assert proxy.waits == [0.3] * SDK_ATTEMPTS


def test_a_wait_beyond_rate_limit_max_wait_is_not_one_to_make(shared):
    """An upstream asking for longer than RATE_LIMIT_MAX_WAIT (30 s) on a transient code:
    neither the proxy nor the SDK holds the caller that long."""
    proxy, fake_zai = shared
    client, waits = _anthropic(proxy)
    error = _raised("anthropic", client, "error;code=1302;retry_after=600")
    assert error.response.headers["x-should-retry"] == "false"
    assert error.response.headers["retry-after"] == "600"   # the upstream's, verbatim
    assert waits == [] and len(fake_zai.requests) == 1


# The proxy's own 429 and 503 ----------------------------------------------------------------
@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_sdks_retry_the_proxys_rate_limit_after_its_precise_hint(inprocess_proxy, fake_zai,
                                                                 family):
    # 1 req/s and no queueing: a second request at once is refused until the first one's
    # second is over, a fraction of a second later.
    proxy = inprocess_proxy(**{**SETTINGS, "RATE_LIMIT_ENABLED": "true",
                               "RATE_LIMIT_INITIAL": "1", "RATE_LIMIT_MIN": "1",
                               "RATE_LIMIT_MAX": "1", "RATE_LIMIT_MAX_WAIT": "0"})
    client, waits = _client(family, proxy)
    _call(family, client)
    _call(family, client)
    assert len(fake_zai.requests) == 2
    assert proxy.value("zai_proxy_rate_limit_rejections_total") >= 1
    # The SDK waited for what was left of that second (retry-after-ms), not a whole second.
    assert waits and 0 < waits[0] < 1.0


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_sdks_retry_the_proxys_503_at_capacity(inprocess_proxy, family):
    with RawUpstream() as upstream:
        release = threading.Event()
        upstream.reply(Wait(release), response(200, b'{"ok":1}', content_type="application/json"))
        proxy = inprocess_proxy(upstream.url, **SETTINGS, MAX_WORKERS="1")
        holder = threading.Thread(target=lambda: requests.post(
            proxy.url + "/v1/models/held", json={}, timeout=30))
        holder.start()
        upstream.wait_requests(1)                     # the one slot is taken
        client, waits = _client(family, proxy)
        choose = client._calculate_retry_timeout

        def then_release(*args, **kwargs):           # the SDK decided to retry: free the slot
            wait = choose(*args, **kwargs)
            release.set()
            holder.join(10)
            return wait

        client._calculate_retry_timeout = then_release
        upstream.default(response(200, _answer(family), content_type="application/json"))
        _call(family, client)
        assert waits == [1.0]                         # Retry-After: 1, retry-after-ms: 1000
        assert waits.headers[0]["x-should-retry"] == "true"
        assert proxy.value("zai_proxy_requests_total", status_code="503") == 1


def _answer(family: str) -> bytes:
    if family == "openai":
        return json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                           "model": "glm-4.7", "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "ok"}}]}).encode()
    return json.dumps({"id": "x", "type": "message", "role": "assistant", "model": "glm-4.7",
                       "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                       "stop_sequence": None,
                       "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
