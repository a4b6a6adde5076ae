"""The MAX_WORKERS cap, client disconnects, long streams and graceful shutdown.

Hang-ups are the pipeline's (its disconnect watcher): in-process. The cap with probes still
answering (gunicorn's thread pool), gunicorn's worker timeout and SIGTERM: under gunicorn."""

from __future__ import annotations

import concurrent.futures
import json
import select
import signal
import socket
import threading
import time

import psutil
import requests

SLOW_STREAM = {"model": "glm-4.7", "stream": True, "messages": []}


def _open_stream(proxy, scenario: str) -> requests.Response:
    response = requests.post(proxy.url + "/v1/chat/completions", json=SLOW_STREAM, stream=True,
                             headers={"X-Fake-Scenario": scenario}, timeout=30)
    assert response.status_code == 200
    # Keep the iterator: a discarded one makes urllib3 close the connection (a real hang-up).
    response.chunks = response.iter_content(1)
    next(response.chunks)                # the stream has started: its slot is taken
    return response


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_over_the_cap_is_503_at_once_while_metrics_and_probes_answer(start_gunicorn):
    proxy = start_gunicorn(MAX_WORKERS="3", RATE_LIMIT_ENABLED="false")
    streams = [_open_stream(proxy, "ok;chunks=40;interval_ms=100") for _ in range(3)]
    try:
        assert proxy.value("zai_proxy_concurrent_requests") == 3
        assert proxy.value("zai_proxy_worker_utilization_ratio") == 1.0
        assert proxy.value("zai_proxy_max_workers") == 3
        for family_path, check in (("/v1/chat/completions", lambda b: b["error"]["code"]),
                                   ("/v1/messages", lambda b: b["error"]["type"])):
            started = time.monotonic()
            response = requests.post(proxy.url + family_path,
                                     json={"model": "glm-4.7", "max_tokens": 5, "messages": []})
            assert time.monotonic() - started < 2.0      # refused at once, not queued
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert check(response.json()) in ("at_capacity", "overloaded_error")
        for probe in ("/metrics", "/livez", "/readyz", "/health"):
            assert requests.get(proxy.url + probe, timeout=2).status_code == 200
    finally:
        for stream in streams:
            stream.close()
    assert _wait_for(lambda: proxy.value("zai_proxy_concurrent_requests") == 0)
    assert proxy.wait_value("zai_proxy_requests_total", 2, status_code="503") == 2


def test_client_disconnect_frees_the_slot_and_closes_the_upstream(start_proxy, fake_zai):
    proxy = start_proxy(MAX_WORKERS="2", RATE_LIMIT_ENABLED="false")
    stream = _open_stream(proxy, "ok;chunks=200;interval_ms=100")
    assert proxy.value("zai_proxy_concurrent_requests") == 1
    stream.close()                      # the client hangs up
    assert _wait_for(lambda: fake_zai.requests[0].disconnected, timeout=5)
    assert _wait_for(lambda: proxy.value("zai_proxy_concurrent_requests") == 0)
    assert proxy.value("zai_proxy_stream_disconnects_total") == 1
    [line] = proxy.wait_for_request_logs(1)
    assert line["outcome"] == "client_gone"


def test_disconnect_while_the_upstream_is_silent_is_noticed_promptly(start_proxy, fake_zai):
    # The upstream sends two chunks then nothing: only the watcher can notice the hang-up,
    # since there is no write to fail.
    proxy = start_proxy(RATE_LIMIT_ENABLED="false")
    stream = _open_stream(proxy, "stall;after=2")
    stream.close()
    assert _wait_for(lambda: fake_zai.requests[0].disconnected, timeout=3)
    assert _wait_for(lambda: proxy.value("zai_proxy_concurrent_requests") == 0, timeout=3)


def test_disconnect_before_the_upstream_answers_cancels_the_upstream_call(start_proxy, fake_zai):
    proxy = start_proxy(RATE_LIMIT_ENABLED="false")
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    body = b'{"model":"glm-4.7","messages":[]}'
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Fake-Scenario: hang\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    assert _wait_for(lambda: len(fake_zai.requests) == 1)
    sock.close()
    assert _wait_for(lambda: fake_zai.requests[0].disconnected, timeout=3)
    assert _wait_for(lambda: proxy.value("zai_proxy_concurrent_requests") == 0, timeout=3)


def _direct(fake_zai, body, headers) -> concurrent.futures.Future:
    """What the upstream sends for this request when asked directly: fetched in the background
    while the test's own request runs, so a slow stream is not waited for twice."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(lambda: requests.post(fake_zai.url + "/api/paas/v4/chat/completions",
                                                 json=body, headers=headers,
                                                 timeout=30).content)
    finally:
        pool.shutdown(wait=False)


def test_a_stream_outlives_the_gunicorn_worker_timeout(start_gunicorn, fake_zai):
    proxy = start_gunicorn(GUNICORN_CMD_ARGS="--timeout 2", RATE_LIMIT_ENABLED="false")
    scenario = {"X-Fake-Scenario": "ok;chunks=12;interval_ms=500"}
    expected = _direct(fake_zai, SLOW_STREAM, scenario)
    started = time.monotonic()
    response = requests.post(proxy.url + "/v1/chat/completions", json=SLOW_STREAM,
                             headers=scenario)
    assert time.monotonic() - started > 5.0              # 2.5 × gunicorn's timeout
    assert response.status_code == 200
    assert response.content == expected.result(30)


def test_sigterm_drains_in_flight_streams(start_gunicorn, fake_zai):
    proxy = start_gunicorn(RATE_LIMIT_ENABLED="false")
    scenario = {"X-Fake-Scenario": "ok;chunks=20;interval_ms=150"}
    expected = _direct(fake_zai, SLOW_STREAM, scenario)
    received = {}

    def read_stream():
        response = requests.post(proxy.url + "/v1/chat/completions", json=SLOW_STREAM,
                                 headers=scenario)
        received["status"] = response.status_code
        received["body"] = response.content

    reader = threading.Thread(target=read_stream)
    reader.start()
    assert _wait_for(lambda: proxy.value("zai_proxy_concurrent_requests") == 1)
    proxy.proc.send_signal(signal.SIGTERM)
    assert _wait_for(lambda: requests.get(proxy.url + "/readyz").status_code == 503, timeout=2)
    refused = requests.post(proxy.url + "/v1/chat/completions",
                            json={"model": "glm-4.7", "messages": []})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "draining"
    assert refused.headers["Retry-After"] == "1"
    reader.join(20)
    assert received["status"] == 200
    assert received["body"] == expected.result(30)        # every chunk and [DONE] arrived
    assert proxy.proc.wait(20) == 0


def test_a_request_still_on_its_way_when_the_drain_ends_gets_the_draining_answer(start_gunicorn):
    """A connection the draining worker accepted, whose request had not arrived when its last
    stream ended, is answered (503 draining, Connection: close: the client goes elsewhere), not
    closed unanswered, which the client cannot tell from a failure: the stopping worker waits
    for a head as long as gunicorn waits on a kept-alive connection (2 s)."""
    proxy = start_gunicorn(RATE_LIMIT_ENABLED="false")
    [worker] = psutil.Process(proxy.proc.pid).children()
    stream = _open_stream(proxy, "ok;chunks=10;interval_ms=100")
    proxy.proc.send_signal(signal.SIGTERM)
    assert _wait_for(lambda: "draining 1 in-flight" in proxy.stdout())
    late = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    try:
        port = late.getsockname()[1]
        # Accepted by the draining worker (it keeps accepting until its streams end).
        assert _wait_for(lambda: any(c.raddr and c.raddr[1] == port
                                     for c in worker.net_connections()))
        assert b"".join(stream.chunks).endswith(b"data: [DONE]\n\n")
        assert _wait_for(lambda: "drained: stopping" in proxy.stdout())
        # The moment a worker that does not wait would have closed the connection.
        closed, _, _ = select.select([late], [], [], 0.3)
        assert not closed, "the connection was closed before its request could arrive"
        late.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        answer = b""
        while chunk := late.recv(65536):
            answer += chunk
    finally:
        late.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "draining"
    assert proxy.proc.wait(20) == 0
