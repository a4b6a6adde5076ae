"""Thread starvation and client deadlines under gunicorn (issue 10, items 3 and 6).

gunicorn's gthread worker serves connections from a pool of threads; these tests are about that
pool, so they run the real command over real sockets. The proxy has MAX_WORKERS=2, hence a pool
of 10 threads, and short client deadlines so that each attack ends within seconds.

A probe "did not wait for the attack" when it was answered before the proxy had cut any of the
attacking clients: only cutting them would have freed a thread for it otherwise.
"""

from __future__ import annotations

import json
import socket

import pytest
import requests

from tools.proxy_process import ProxyProcess
from tools.raw_upstream import RawUpstream
from tools.reliability.harness import wait_for
from tools.reliability.starvation import (PROBE_PATHS, Crowd, probe, silent, slow_upload,
                                          stalled_reader, trickle_head, upstream_answer)

KEY = "starvation-test-key"
THREADS = 10                     # MAX_WORKERS=2 + 8 spare (config.threads_per_process)
HEADER_TIMEOUT = BODY_TIMEOUT = 3.0
WRITE_TIMEOUT = 1.0
CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream():
    with RawUpstream() as server:
        server.handler = upstream_answer     # endless streams, else a small completion
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, upstream):
    with ProxyProcess(tmp_path_factory.mktemp("starvation"), upstream.url, WEB_CONCURRENCY=1,
                      MAX_WORKERS=2, PROXY_API_KEYS=KEY, RATE_LIMIT_ENABLED="false",
                      CLIENT_HEADER_TIMEOUT=f"{HEADER_TIMEOUT:g}s",
                      CLIENT_BODY_TIMEOUT=f"{BODY_TIMEOUT:g}s",
                      CLIENT_WRITE_TIMEOUT=f"{WRITE_TIMEOUT:g}s") as started:
        yield started


def _chat(proxy, **kwargs):
    return requests.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=15,
                         headers={"Authorization": f"Bearer {KEY}"}, **kwargs)


def _answered_before_any_cut(crowd: Crowd, probes) -> list[str]:
    first_cut = crowd.first_cut
    return [f"{p.path}: {p.status} after {p.seconds:.1f} s" for p in probes
            if p.status != 200 or (first_cut is not None and p.answered_at >= first_cut)]


def test_trickling_heads_hold_no_thread_and_are_cut_at_the_header_deadline(proxy):
    before = proxy.value("zai_proxy_client_timeouts_total", phase="header")
    with Crowd(proxy.port, THREADS + 4, trickle_head, interval=0.1) as crowd:
        probes = [probe(proxy.url, path, timeout=8) for path in PROBE_PATHS]
        # Unauthenticated connections cannot take what authenticated traffic needs.
        chat = _chat(proxy)
        probes.append(probe(proxy.url, "/livez", timeout=8))
        chat_at = probes[-1].answered_at
        assert wait_for(lambda: len(crowd.cut()) == len(crowd.clients), 4 * HEADER_TIMEOUT)
    assert _answered_before_any_cut(crowd, probes) == []
    assert chat.status_code == 200 and chat_at < crowd.first_cut
    # Cut after the total head deadline, while still sending bytes, with a 408.
    assert {c.status for c in crowd.clients} == {408}
    assert min(c.cut_at - c.started_at for c in crowd.clients) > HEADER_TIMEOUT - 0.5
    assert proxy.value("zai_proxy_client_timeouts_total", phase="header") - before \
        == len(crowd.clients)


def test_slow_uploads_cannot_delay_probes_and_are_cut_at_the_total_body_deadline(proxy):
    before = proxy.value("zai_proxy_client_timeouts_total", phase="body")
    # One upload per pool thread, each sending a byte every 0.1 s: no pause is ever long.
    with Crowd(proxy.port, THREADS, slow_upload, key=KEY, interval=0.1, size=5000) as crowd:
        probes = [probe(proxy.url, path, timeout=8) for path in PROBE_PATHS]
        assert wait_for(lambda: len(crowd.cut()) == len(crowd.clients), 4 * BODY_TIMEOUT)
    assert _answered_before_any_cut(crowd, probes) == []
    assert {c.status for c in crowd.clients} == {408}
    assert proxy.value("zai_proxy_client_timeouts_total", phase="body") - before == THREADS
    timed_out = [line for line in proxy.request_logs() if line["outcome"] == "request_timeout"]
    assert len(timed_out) >= THREADS and {line["status"] for line in timed_out} == {408}


def test_silent_connections_hold_no_thread_and_are_closed_at_the_header_deadline(proxy):
    with Crowd(proxy.port, 4 * THREADS, silent) as crowd:
        probes = [probe(proxy.url, path, timeout=8) for path in PROBE_PATHS]
        chat = _chat(proxy)
        probes.append(probe(proxy.url, "/readyz", timeout=8))
        assert wait_for(lambda: len(crowd.cut()) == len(crowd.clients), 4 * HEADER_TIMEOUT)
    assert _answered_before_any_cut(crowd, probes) == []
    assert chat.status_code == 200


def test_a_client_that_never_reads_loses_its_slot_and_its_upstream_connection(proxy, upstream):
    before = proxy.value("zai_proxy_client_timeouts_total", phase="write")
    logged = len(proxy.request_logs())
    with Crowd(proxy.port, 2, stalled_reader, key=KEY) as crowd:    # both MAX_WORKERS slots
        # Each stream is cut once one write has waited WRITE_TIMEOUT for the client.
        assert wait_for(lambda: len(crowd.cut()) == 2, 10 + 4 * WRITE_TIMEOUT)
        assert wait_for(lambda: proxy.value("zai_proxy_concurrent_requests") == 0, 5)
        assert _chat(proxy).status_code == 200          # the slots are free again
    assert proxy.value("zai_proxy_client_timeouts_total", phase="write") - before == 2
    cut = [line for line in proxy.wait_for_request_logs(logged + 3)[logged:]
           if line["outcome"] == "write_timeout"]
    assert [line["status"] for line in cut] == [200, 200]
    # The upstream connections of both streams were closed while the upstream was still
    # sending, not returned to the pool: the call after them went on another connection.
    *streams, after = upstream.requests[-3:]
    assert [json.loads(r.body).get("stream") for r in streams] == [True, True]
    for connection in {r.connection for r in streams}:
        assert upstream.wait_closed(connection).closed_by == "client"
    assert after.connection not in {r.connection for r in streams}


def test_closing_connections_whose_clients_stay_do_not_stall_the_main_loop(proxy):
    # gunicorn closes a connection by waiting (up to 2 s) for the client to close too; done on
    # the main loop, a few clients that never close would hold up every new connection.
    clients = []
    try:
        for _ in range(THREADS):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")    # answered, then closed (1.0)
            clients.append(sock)
        for sock in clients:
            assert sock.recv(12) == b"HTTP/1.0 401"
        probes = [probe(proxy.url, path, timeout=5) for path in PROBE_PATHS]
    finally:
        for sock in clients:
            sock.close()
    assert [(p.path, p.status) for p in probes] == [(path, 200) for path in PROBE_PATHS]


def test_a_rejected_request_with_an_unread_body_closes_its_connection(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer "
                     b"wrong\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        data = b""
        while True:          # the answer, then the end of the connection: nothing is drained
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    head_text = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head_text.startswith("http/1.1 401") and "connection: close" in head_text
