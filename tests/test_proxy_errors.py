"""Errors the proxy makes itself: status, family format, a message a person can act on."""

from __future__ import annotations

import socket

import pytest
import requests
from tools.sdks import anthropic_client, openai, openai_client


def _openai_error(response, status, code):
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["type"]
    assert len(body["error"]["message"]) > 20
    return body["error"]


def _anthropic_error(response, status, error_type):
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert len(body["error"]["message"]) > 20
    return body["error"]


def test_malformed_json_is_400_in_each_family(proxy, fake_zai):
    headers = {"Content-Type": "application/json"}
    bad = b'{"model": "glm-4.7", "messages": ['
    _openai_error(requests.post(proxy.url + "/v1/chat/completions", data=bad, headers=headers),
                  400, "invalid_json")
    _anthropic_error(requests.post(proxy.url + "/v1/messages", data=bad, headers=headers),
                     400, "invalid_request_error")
    _openai_error(requests.post(proxy.url + "/v1/chat/completions", data=b"[1,2]",
                                headers=headers), 400, "invalid_json")
    _openai_error(requests.post(proxy.url + "/v1/chat/completions", data=b"", headers=headers),
                  400, "invalid_json")
    _openai_error(requests.post(proxy.url + "/v1/chat/completions", data=b'{"a":"\xff\xfe"}',
                                headers=headers), 400, "invalid_json")
    assert fake_zai.requests == []


def test_wrong_content_type_is_415(proxy, fake_zai):
    response = requests.post(proxy.url + "/v1/chat/completions", data="model=glm",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "application/json" in _openai_error(response, 415, "unsupported_media_type")["message"]
    assert fake_zai.requests == []


def test_unknown_route_is_404_in_the_callers_family(proxy):
    _openai_error(requests.get(proxy.url + "/nope"), 404, "unknown_route")
    _openai_error(requests.post(proxy.url + "/", json={}), 404, "unknown_route")


def test_path_traversal_on_api_routes_is_refused(proxy, fake_zai):
    for path in ("/api/../admin/reset-rate-limit", "/api/anthropic/%2e%2e/%2e%2e/etc/passwd",
                 "/api/paas/v4/./chat/completions"):
        with requests.Session() as session:
            prepared = requests.Request("POST", proxy.url + "/x", json={}).prepare()
            prepared.url = proxy.url + path   # keep the dots: requests would normalise them
            response = session.send(prepared)
        assert response.status_code == 400, path
        error = response.json()["error"]
        assert error.get("code", "invalid_path") == "invalid_path"   # Anthropic has no code
        assert "'..'" in error["message"]
    assert fake_zai.requests == []


def test_too_large_body_is_413_without_reading_it(start_proxy, fake_zai):
    proxy = start_proxy(MAX_REQUEST_BYTES="2048", RATE_LIMIT_ENABLED="false")
    # Announce 1 GB and send nothing: the answer must come at once, from the header alone.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 1000000000\r\n\r\n")
        head = b""
        while b'"request_too_large"' not in head:
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
        head = head.decode()
    assert head.startswith("HTTP/1.1 413")
    assert '"request_too_large"' in head and "MAX_REQUEST_BYTES" in head
    # A chunked body with no length is cut off at the limit too.
    body = (b'{"model":"glm-4.7","messages":[],"pad":"' + b"x" * 5000 + b'"}')
    response = requests.post(proxy.url + "/v1/chat/completions", data=iter([body]),
                             headers={"Content-Type": "application/json"})
    _openai_error(response, 413, "request_too_large")
    assert fake_zai.requests == []


def test_client_keys_required_when_configured_and_never_forwarded(start_proxy, fake_zai):
    proxy = start_proxy(PROXY_API_KEYS="alpha-key, beta-key", RATE_LIMIT_ENABLED="false")
    body = {"model": "glm-4.7", "messages": [{"role": "user", "content": "x"}]}
    _openai_error(requests.post(proxy.url + "/v1/chat/completions", json=body), 401,
                  "invalid_api_key")
    _anthropic_error(requests.post(proxy.url + "/v1/messages", json=body,
                                   headers={"x-api-key": "wrong"}), 401, "authentication_error")
    assert fake_zai.requests == []

    ok = openai_client(base_url=proxy.url + "/v1", api_key="beta-key", max_retries=0)
    assert ok.chat.completions.create(model="glm-4.7", messages=body["messages"]).choices
    ok_anthropic = anthropic_client(base_url=proxy.url, api_key="alpha-key", max_retries=0)
    assert ok_anthropic.messages.create(model="glm-4.7", max_tokens=8,
                                        messages=body["messages"]).content
    for seen in fake_zai.requests:
        assert "alpha-key" not in repr(list(seen.headers.items()))
        assert "beta-key" not in repr(list(seen.headers.items()))
    with pytest.raises(openai.AuthenticationError):
        openai_client(base_url=proxy.url + "/v1", api_key="alpha-keyX",
                      max_retries=0).models.list()


def test_unreachable_upstream_is_502(start_proxy, tmp_path):
    closed_port = _closed_port()
    proxy = start_proxy(upstream_url=f"http://127.0.0.1:{closed_port}", MAX_RETRIES="0",
                        RATE_LIMIT_ENABLED="false")
    response = requests.post(proxy.url + "/v1/chat/completions",
                             json={"model": "glm-4.7", "messages": []})
    assert "connection was refused" in _openai_error(response, 502, "upstream_connection")["message"]
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_refused") == 1


def test_silent_upstream_is_504_after_the_idle_timeout(start_proxy, fake_zai):
    proxy = start_proxy(UPSTREAM_READ_TIMEOUT="500ms", MAX_RETRIES="0",
                        RATE_LIMIT_ENABLED="false")
    response = requests.post(proxy.url + "/v1/messages",
                             json={"model": "glm-4.7", "max_tokens": 8, "messages": []},
                             headers={"X-Fake-Scenario": "hang"})
    _anthropic_error(response, 504, "api_error")
    assert proxy.value("zai_proxy_upstream_errors_total", error_type="upstream_timeout") == 1


def test_idle_timeout_is_not_a_total_time_cap(start_proxy):
    # 8 chunks 300 ms apart: 2.4 s in all, far beyond the 1 s idle timeout, never idle that long.
    proxy = start_proxy(UPSTREAM_READ_TIMEOUT="1s", RATE_LIMIT_ENABLED="false")
    response = requests.post(proxy.url + "/v1/chat/completions",
                             json={"model": "glm-4.7", "stream": True, "messages": []},
                             headers={"X-Fake-Scenario": "ok;chunks=8;interval_ms=300"})
    assert response.status_code == 200
    assert response.content.rstrip().endswith(b"data: [DONE]")
    assert b'"error"' not in response.content


def test_service_paths_with_other_methods_are_json_404s(proxy, fake_zai):
    for path in ("/metrics", "/livez", "/admin/reset-rate-limit"):
        response = requests.request("PUT", proxy.url + path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "unknown_route"
    assert fake_zai.requests == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
