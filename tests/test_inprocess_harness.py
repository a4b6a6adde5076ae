"""The in-process proxy harness itself: every test builds and drops apps inside one process, so a
dropped app must leave nothing running, and each app must keep its own log lines."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import requests

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def _descriptors() -> set[str]:
    """What this process's open descriptors point at (socket:[inode], pipe:[inode], files...):
    a new object has a new identity, whichever descriptor number it took."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found.add(os.readlink(fd))
        except OSError:
            pass   # closed meanwhile
    return found


def _left_behind(before_threads, before_descriptors, timeout=5.0):
    """Threads and descriptors opened since the snapshot and still open, once they had a moment
    to close (what earlier tests in this process close meanwhile does not count)."""
    deadline = time.monotonic() + timeout
    while True:
        threads = set(threading.enumerate()) - before_threads
        descriptors = _descriptors() - before_descriptors
        if (not threads and not descriptors) or time.monotonic() > deadline:
            return threads, descriptors
        time.sleep(0.05)


def test_a_stopped_app_leaves_no_thread_or_descriptor_behind(fake_zai):
    from tests.inprocess import InProcessProxy
    threads, descriptors = set(threading.enumerate()), _descriptors()
    for _ in range(5):
        # Every part create_app() can start: limiter, token counting, quota poller.
        proxy = InProcessProxy(fake_zai.url, RATE_LIMIT_ENABLED="true", QUOTA_POLL_ENABLED="true",
                               TOKEN_COUNTING_ENABLED="true")
        with requests.Session() as session:
            assert session.post(proxy.url + "/v1/chat/completions", json=CHAT).status_code == 200
        proxy.stop()
    assert _left_behind(threads, descriptors) == (set(), set())


def test_each_app_keeps_its_own_log_lines(start_proxy):
    first, second = start_proxy(), start_proxy()
    for proxy, request_id in ((first, "req-first"), (second, "req-second"), (first, "req-third")):
        assert requests.get(proxy.url + "/v1/models",
                            headers={"X-Request-Id": request_id}).status_code == 200
    assert {line["request_id"] for line in first.wait_for_request_logs(2)} == {"req-first",
                                                                                "req-third"}
    assert [line["request_id"] for line in second.wait_for_request_logs(1)] == ["req-second"]
    assert "req-second" not in first.stdout()


@pytest.mark.parametrize("setting", [{"WEB_CONCURRENCY": "2"}, {"GUNICORN_CMD_ARGS": "--timeout 2"},
                                     {"PROMETHEUS_MULTIPROC_DIR": "/tmp/x"}])
def test_a_setting_only_gunicorn_uses_is_refused_in_process(start_proxy, setting):
    """A test written for gunicorn (several workers, its flags) must not quietly pass against the
    in-process app, where the setting would do nothing."""
    with pytest.raises(ValueError, match="start_gunicorn"):
        start_proxy(**setting)



def test_a_response_is_closed_even_when_its_client_resets_the_connection(start_proxy):
    """The proxy writes its request line in the response's close(). werkzeug's server skips
    close() when, after the answer, reading what the client sent past its request fails with a
    reset; gunicorn never skips it, nor may the harness. The client here sends a byte while its
    stream is still coming, reads the stream to its end, then resets the connection."""
    import socket
    import struct

    proxy = start_proxy()
    body = (b'{"model": "glm-4.7@ok;chunks=3;interval_ms=100", "stream": true,'
            b' "messages": [{"role": "user", "content": "hi"}]}')
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = client.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        client.sendall(b"+")            # while the stream goes on: the server reads it after
        while not answer.endswith(b"\r\n0\r\n\r\n"):
            answer += client.recv(65536)
        time.sleep(0.2)                 # the server now waits for the rest of the client's bytes
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    [line] = proxy.wait_for_request_logs(1)
    assert line["status"] == 200 and line["outcome"] == "ok"
