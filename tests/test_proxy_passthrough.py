"""Both API families through the real proxy, with the official SDKs and raw HTTP.

Bodies must arrive byte for byte as the upstream sent them; the upstream must see the proxy's key
and identity, never the client's.
"""

from __future__ import annotations

import concurrent.futures
import json
import time

import requests

from tools.sdks import anthropic_client, openai_client
from tools.proxy_process import TEST_ZAI_KEY

CLIENT_KEY = "client-key-should-never-go-upstream"


def _openai(proxy, **kwargs):
    return openai_client(base_url=proxy.url + "/v1", api_key=CLIENT_KEY, max_retries=0, **kwargs)


def _anthropic(proxy):
    return anthropic_client(base_url=proxy.url, api_key=CLIENT_KEY, max_retries=0)


def test_openai_sdk_chat_goes_to_openai_surface_with_bearer_key(proxy, fake_zai):
    reply = _openai(proxy).chat.completions.create(
        model="glm-4.7", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content
    [seen] = fake_zai.requests
    assert seen.method == "POST"
    assert seen.path == "/api/paas/v4/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {TEST_ZAI_KEY}"
    assert "x-api-key" not in seen.headers
    assert seen.headers["User-Agent"].startswith("zai-proxy/")
    assert not [h for h in seen.headers if h.lower().startswith("x-stainless")]
    assert CLIENT_KEY not in repr(list(seen.headers.items()))
    assert seen.headers["Accept-Encoding"] == "identity"


def test_anthropic_sdk_messages_go_to_anthropic_surface_with_x_api_key(proxy, fake_zai):
    reply = _anthropic(proxy).messages.create(
        model="glm-4.7", max_tokens=64, messages=[{"role": "user", "content": "hello"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    assert reply.content[0].text
    [seen] = fake_zai.requests
    assert seen.path == "/api/anthropic/v1/messages"
    assert seen.headers["x-api-key"] == TEST_ZAI_KEY
    assert "Authorization" not in seen.headers
    assert seen.headers["anthropic-version"]            # API headers pass through
    assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert CLIENT_KEY not in repr(list(seen.headers.items()))


def test_bodies_pass_through_byte_for_byte_both_ways(proxy, fake_zai):
    body = b'{"model": "glm-4.7",  "messages": [{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}]}'
    headers = {"Content-Type": "application/json"}
    direct = requests.post(fake_zai.url + "/api/paas/v4/chat/completions", data=body,
                           headers=headers)
    fake_zai.clear()
    proxied = requests.post(proxy.url + "/v1/chat/completions", data=body, headers=headers)
    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content
    assert fake_zai.requests[0].body == body            # the request body is not re-serialised


def test_upstream_error_bodies_and_statuses_pass_through_unchanged(proxy, fake_zai):
    body = json.dumps({"model": "glm-4.7", "messages": []}).encode()
    scenario = {"X-Fake-Scenario": "error;status=400;code=1214;message=bad%20param"}
    direct = requests.post(fake_zai.url + "/api/paas/v4/chat/completions", data=body,
                           headers=scenario)
    proxied = requests.post(proxy.url + "/v1/chat/completions", data=body,
                            headers={**scenario, "Content-Type": "application/json"})
    assert proxied.status_code == direct.status_code == 400
    assert proxied.content == direct.content


def test_routes_and_query_strings(proxy, fake_zai):
    requests.get(fake_zai.url + "/api/paas/v4/models?limit=5&after=x%20y")
    direct_query = fake_zai.requests[0].query
    fake_zai.clear()
    assert requests.get(proxy.url + "/v1/models?limit=5&after=x%20y").status_code == 200
    assert requests.post(proxy.url + "/api/coding/paas/v4/chat/completions",
                         json={"model": "glm-4.7", "messages": []}).status_code == 200
    assert requests.post(proxy.url + "/api/anthropic/v1/messages?beta=true",
                         json={"model": "glm-4.7", "max_tokens": 8,
                               "messages": [{"role": "user", "content": "x"}]}).status_code == 200
    assert requests.post(proxy.url + "/v1/messages/count_tokens",
                         json={"model": "glm-4.7",
                               "messages": [{"role": "user", "content": "x"}]}).status_code == 200
    models, coding, anthropic_native, count = fake_zai.requests
    assert (models.method, models.path, models.query) == ("GET", "/api/paas/v4/models",
                                                          direct_query)
    assert coding.path == "/api/coding/paas/v4/chat/completions"
    assert coding.headers["Authorization"] == f"Bearer {TEST_ZAI_KEY}"
    assert (anthropic_native.path, anthropic_native.query) == ("/api/anthropic/v1/messages",
                                                               "beta=true")
    assert anthropic_native.headers["x-api-key"] == TEST_ZAI_KEY
    assert count.path == "/api/anthropic/v1/messages/count_tokens"
    assert count.headers["x-api-key"] == TEST_ZAI_KEY


def test_coding_plan_path_is_configurable(start_proxy, fake_zai):
    proxy = start_proxy(ZAI_OPENAI_PATH="/api/coding/paas/v4", RATE_LIMIT_ENABLED="false")
    _openai(proxy).chat.completions.create(model="glm-4.7",
                                           messages=[{"role": "user", "content": "x"}])
    assert fake_zai.requests[0].path == "/api/coding/paas/v4/chat/completions"


def test_openai_stream_arrives_incrementally_and_intact(proxy, fake_zai):
    scenario = "ok;chunks=6;interval_ms=300"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:   # the same stream, asked directly
        direct = pool.submit(lambda: requests.post(
            fake_zai.url + "/api/paas/v4/chat/completions", timeout=30,
            json={"model": "glm-4.7", "stream": True, "messages": []},
            headers={"X-Fake-Scenario": scenario}).content)
        arrivals, received = _receive_stream(proxy, scenario)
    assert received == direct.result()
    # The first event reached the client while the upstream was still generating: 5 more
    # chunks at 300 ms each were still to come.
    assert arrivals[0] < arrivals[-1] - 1.0
    assert len(arrivals) >= 4


def _receive_stream(proxy, scenario) -> tuple[list[float], bytes]:
    """(when each piece arrived, the bytes) of a streamed chat completion read raw."""
    started = time.monotonic()
    arrivals, received = [], b""
    with requests.post(proxy.url + "/v1/chat/completions", stream=True,
                       json={"model": "glm-4.7", "stream": True, "messages": []},
                       headers={"X-Fake-Scenario": scenario}) as response:
        assert response.status_code == 200
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["Cache-Control"] == "no-cache"
        assert "Content-Length" not in response.headers
        for chunk in response.raw.stream(65536, decode_content=False):
            arrivals.append(time.monotonic() - started)
            received += chunk
    return arrivals, received


def test_anthropic_stream_through_sdk(proxy):
    client = _anthropic(proxy)
    with client.messages.stream(model="glm-4.7", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}],
                                extra_headers={"X-Fake-Scenario": "ok;chunks=4"}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.usage.output_tokens > 0


def test_openai_stream_through_sdk(proxy):
    chunks = list(_openai(proxy).chat.completions.create(
        model="glm-4.7", stream=True, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Fake-Scenario": "ok;chunks=5"}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and len(chunks) >= 5


def test_hop_by_hop_headers_are_stripped_and_request_id_echoed(proxy, fake_zai):
    response = requests.post(proxy.url + "/v1/chat/completions",
                             json={"model": "glm-4.7", "messages": []},
                             headers={"Connection": "keep-alive, X-Secret-Hop",
                                      "X-Secret-Hop": "1", "Keep-Alive": "timeout=5",
                                      "X-Request-Id": "req-abc-123",
                                      "X-Forwarded-For": "10.1.2.3"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "req-abc-123"
    seen = fake_zai.requests[0].headers
    for name in ("X-Secret-Hop", "Keep-Alive", "X-Forwarded-For"):
        assert name not in seen
    assert seen["X-Request-Id"] == "req-abc-123"
    generated = requests.get(proxy.url + "/v1/models").headers["X-Request-Id"]
    assert len(generated) == 32
    lines = proxy.wait_for_request_logs(2)
    assert {"req-abc-123", generated} <= {line["request_id"] for line in lines}
    line = next(line for line in lines if line["request_id"] == "req-abc-123")
    assert line["route"] == "/v1/chat/completions" and line["status"] == 200
    assert line["model"] == "glm-4.7" and line["upstream_status"] == 200
    assert line["variant"] == "production" and line["duration_ms"] > 0


def test_upstream_cookies_are_passed_to_the_client_but_never_replayed(proxy, fake_zai):
    first = requests.post(proxy.url + "/v1/chat/completions", json={"model": "glm-4.7",
                          "messages": []},
                          headers={"X-Fake-Scenario": "ok;h.Set-Cookie=session%3Dalice"})
    assert first.headers["Set-Cookie"] == "session=alice"
    requests.post(proxy.url + "/v1/chat/completions", json={"model": "glm-4.7", "messages": []})
    assert "Cookie" not in fake_zai.requests[1].headers


def test_upstream_connections_are_pooled_and_reused(proxy, fake_zai):
    import psutil
    from urllib.parse import urlsplit
    upstream_port = urlsplit(fake_zai.url).port
    for _ in range(20):
        assert requests.post(proxy.url + "/v1/chat/completions",
                             json={"model": "glm-4.7", "messages": []}).status_code == 200
    # The proxy runs in this process: its sockets towards the upstream port are ours (the fake's
    # own ends have the upstream port as their local one).
    upstream = [c for c in psutil.Process().net_connections("tcp")
                if c.raddr and c.raddr.port == upstream_port]
    # Twenty sequential requests, one kept-alive upstream connection.
    assert len(upstream) == 1 and upstream[0].status == psutil.CONN_ESTABLISHED


def test_api_paths_skip_flask_only_where_its_routes_would_call_the_pipeline():
    # ProxiedFirst hands /v1/… and /api/… straight to the pipeline; that must never take a
    # request that Flask's own routes would have given to another endpoint or refused.
    from werkzeug.exceptions import HTTPException
    from werkzeug.test import create_environ

    import app as app_module
    from zai_proxy import config
    from zai_proxy.proxy import PROXIED_METHODS, ProxiedFirst
    settings = {"ZAI_API_KEY": "k" * 16, "ZAI_BASE_URL": "http://127.0.0.1:9",
                "RATE_LIMIT_STATE_FILE": "", "RATE_LIMIT_ENABLED": "false"}
    app = app_module.create_app(config.load(settings))
    adapter = app.url_map.bind("localhost")
    paths = ["/v1/chat/completions", "/v1/messages", "/v1/", "/v1//x", "/v1/a\nb", "/v1/a\tb",
             "/api/paas/v4/chat/completions", "/api/", "/api/anthropic/v1/messages", "/metrics",
             "/livez", "/readyz", "/health", "/admin/reset-rate-limit", "/", "//v1/x", "/v1",
             "/api", "/nope", "/v2/x"]
    taken = 0
    for method in (*PROXIED_METHODS, "TRACE", "CONNECT", "FOO"):
        for path in paths:
            environ = create_environ("/", method=method)
            environ["PATH_INFO"] = path        # as a server passes it, control bytes included
            try:
                endpoint = adapter.match(path, method=method)[0]
            except HTTPException:
                endpoint = None
            if ProxiedFirst.takes(environ):
                taken += 1
                assert endpoint == "proxied", (method, path)
    assert taken >= 50
