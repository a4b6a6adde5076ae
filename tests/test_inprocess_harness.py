"""The in-process proxy harness itself: every test builds and drops apps inside one process, so a
dropped app must leave nothing running, and each app must keep its own log lines."""

from __future__ import annotations

import threading
import time

import psutil
import requests

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def _settled(read, expected, timeout=5.0):
    deadline = time.monotonic() + timeout
    while read() != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return read()


def test_a_stopped_app_leaves_no_thread_or_descriptor_behind(start_proxy, fake_zai):
    from tests.inprocess import InProcessProxy
    process = psutil.Process()
    threads, descriptors = threading.active_count(), process.num_fds()
    for _ in range(5):
        # Every part create_app() can start: limiter, token counting, quota poller.
        proxy = InProcessProxy(fake_zai.url, RATE_LIMIT_ENABLED="true", QUOTA_POLL_ENABLED="true",
                               TOKEN_COUNTING_ENABLED="true")
        with requests.Session() as session:
            assert session.post(proxy.url + "/v1/chat/completions", json=CHAT).status_code == 200
        proxy.stop()
    assert _settled(threading.active_count, threads) == threads
    assert _settled(process.num_fds, descriptors) == descriptors


def test_each_app_keeps_its_own_log_lines(start_proxy):
    first, second = start_proxy(), start_proxy()
    for proxy, request_id in ((first, "req-first"), (second, "req-second"), (first, "req-third")):
        assert requests.get(proxy.url + "/v1/models",
                            headers={"X-Request-Id": request_id}).status_code == 200
    assert {line["request_id"] for line in first.wait_for_request_logs(2)} == {"req-first",
                                                                                "req-third"}
    assert [line["request_id"] for line in second.wait_for_request_logs(1)] == ["req-second"]
    assert "req-second" not in first.stdout()
