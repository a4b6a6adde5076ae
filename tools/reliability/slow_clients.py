"""Slow clients (slowloris): while some clients trickle their headers or bodies, everyone else
must still be answered, and a client that is slow or stops must be cut off after a total deadline.

The proxy runs one worker with MAX_WORKERS=4, so gunicorn has 12 threads (4 + 8 spare, see
config.threads_per_process). Each case gets its own proxy and they run side by side.

What bounds a slow client (worker.py, client_deadlines.py): a request head is read by the
worker's main loop, without a thread, and must be complete within CLIENT_HEADER_TIMEOUT; the body
within CLIENT_BODY_TIMEOUT in total (then 408); each write of the answer within
CLIENT_WRITE_TIMEOUT (then the connection is reset, the slot freed and a streaming upstream
connection closed). Sizes are bounded too (limit_request_line 4094, limit_request_fields 100,
limit_request_field_size 8190, a 64 KiB head, MAX_REQUEST_BYTES). All three deadlines are 2 s
here. tools/reliability/starvation.py measures the probes under larger crowds.
"""

from __future__ import annotations

import concurrent.futures
import json
import select
import threading
import time

import requests

from tools.raw_upstream import RawUpstream

from . import calls, rawhttp
from .calls import OPENAI, PROXY_PATHS
from .harness import Stack, wait_for, workers
from .starvation import ENDLESS_STREAM, Client, stalled_reader
from .table import Row, row

GROUP = "client"
GAUGE = "zai_proxy_concurrent_requests"
MAX_WORKERS = 4
THREADS = MAX_WORKERS + 8
PROPOSED_TIMEOUT = 2.0       # CLIENT_HEADER_TIMEOUT / _BODY_ / _WRITE_TIMEOUT in the test
ANSWER_WITHIN = PROPOSED_TIMEOUT + 2.0
F_SLOW_HEADERS = "F5"
F_SLOW_BODY = "F6"


def proxy_env() -> dict:
    return dict(WEB_CONCURRENCY="1", MAX_WORKERS=str(MAX_WORKERS), RATE_LIMIT_ENABLED="false",
                CLIENT_HEADER_TIMEOUT=f"{PROPOSED_TIMEOUT:g}s",
                CLIENT_BODY_TIMEOUT=f"{PROPOSED_TIMEOUT:g}s",
                CLIENT_WRITE_TIMEOUT=f"{PROPOSED_TIMEOUT:g}s")


def run(stack: Stack, duration: float) -> list[Row]:
    """`duration`: how long the slow clients keep trickling (> ANSWER_WITHIN + 2 s)."""
    cases = (slow_headers, slow_bodies, stalled_body, trickled_body, never_reads)
    with RawUpstream() as raw:
        raw.default(ENDLESS_STREAM)
        proxies = [stack.proxy(upstream_url=raw.url if case is never_reads else None,
                               **proxy_env()) for case in cases]
        with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
            futures = [pool.submit(case, proxy, duration)
                       for case, proxy in zip(cases, proxies)]
            rows = [future.result() for future in futures]
        for proxy in proxies:
            proxy.stop()
        return rows


def _timed(call) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = call().status_code
    except requests.RequestException as exc:
        status = type(exc).__name__
    return status, time.monotonic() - started


def _chat(proxy, timeout):
    return requests.post(proxy.url + PROXY_PATHS[OPENAI], json=calls.body(OPENAI, False),
                         timeout=timeout)


def _crowd(proxy, count: int, send_one, duration: float) -> list[threading.Thread]:
    until = time.monotonic() + duration
    crowd = [threading.Thread(target=send_one, args=(proxy, until), daemon=True)
             for _ in range(count)]
    for thread in crowd:
        thread.start()
    return crowd


def _trickle_head(proxy, until):
    with rawhttp.connect(proxy.port, timeout=60) as sock:
        head = rawhttp.head("GET", "/v1/models", {"X-Pad": "p" * 200})
        rawhttp.trickle(sock, head, 0.5, until)


def slow_headers(proxy, duration: float) -> Row:
    pid = workers(proxy)
    crowd = _crowd(proxy, THREADS, _trickle_head, duration)
    time.sleep(1.5)   # every thread of the worker now reads a head, one byte at a time
    ready, ready_s = _timed(lambda: requests.get(proxy.url + "/readyz", timeout=duration + 10))
    chat, chat_s = _timed(lambda: _chat(proxy, duration + 10))
    for thread in crowd:
        thread.join()
    problems = []
    for what, status, seconds in (("/readyz", ready, ready_s), ("a chat call", chat, chat_s)):
        if status != 200 or seconds > ANSWER_WITHIN:
            problems.append(f"{what}: {status} after {seconds:.1f} s (the slow clients "
                            f"trickled for {duration:g} s)")
    if workers(proxy) != pid:
        problems.append("worker restarted")
    return row(GROUP, f"{THREADS} clients trickling headers (every thread)",
               f"/readyz and calls answered within {ANSWER_WITHIN:g} s", problems,
               f"/readyz {ready_s:.1f} s, chat {chat_s:.1f} s", F_SLOW_HEADERS,
               readyz_seconds=round(ready_s, 2), chat_seconds=round(chat_s, 2))


def _body_head(length: int) -> bytes:
    return rawhttp.head("POST", PROXY_PATHS[OPENAI], {"Content-Type": "application/json"},
                        length)


def _trickle_body(proxy, until):
    body = json.dumps(dict(calls.body(OPENAI, False), pad="x" * 400)).encode()
    with rawhttp.connect(proxy.port, timeout=60) as sock:
        sock.sendall(_body_head(len(body)))
        rawhttp.trickle(sock, body, 0.5, until)


def slow_bodies(proxy, duration: float) -> Row:
    crowd = _crowd(proxy, MAX_WORKERS, _trickle_body, duration)
    time.sleep(1.5)   # MAX_WORKERS uploads in progress, one byte every 0.5 s
    chat, chat_s = _timed(lambda: _chat(proxy, duration + 10))
    held = proxy.value(GAUGE)
    for thread in crowd:
        thread.join()
    problems = []
    if chat != 200 or chat_s > ANSWER_WITHIN:
        problems.append(f"a chat call got {chat} after {chat_s:.1f} s while {MAX_WORKERS} "
                        f"uploads trickled (slots held by uploads: {held:g})")
    return row(GROUP, f"{MAX_WORKERS} clients trickling bodies (MAX_WORKERS)",
               "other calls still answered 200: an upload holds no slot", problems,
               f"chat {chat} in {chat_s:.1f} s", F_SLOW_BODY, slots_held=held)


def stalled_body(proxy, duration: float) -> Row:
    body = json.dumps(calls.body(OPENAI, False)).encode()
    with rawhttp.connect(proxy.port, timeout=duration + 10) as sock:
        sock.sendall(_body_head(len(body) + 100) + body[:10])
        started = time.monotonic()
        answer = rawhttp.read_answer(sock, timeout=duration)
        waited = time.monotonic() - started
        freed = wait_for(lambda: proxy.value(GAUGE) == 0, 1.0)
    seen = calls.Answer(answer.status, answer.headers, answer.body, waited,
                        "" if answer.status else f"no answer in {waited:.1f} s")
    problems = [calls.family_error(seen, OPENAI, 408)]
    if answer.status and waited > ANSWER_WITHIN:
        problems.append(f"answered only after {waited:.1f} s")
    if not freed:
        problems.append("its slot stays taken while the client holds the connection")
    status = answer.status or "no answer"
    return row(GROUP, "body stops half-way, connection held open",
               f"408 in the family format within {ANSWER_WITHIN:g} s; slot freed", problems,
               f"{status} after {waited:.1f} s", F_SLOW_BODY)


def trickled_body(proxy, duration: float) -> Row:
    """A body whose bytes keep coming (one every 0.2 s), too slowly to end in time."""
    body = json.dumps(dict(calls.body(OPENAI, False), pad="x" * 2000)).encode()
    until = time.monotonic() + duration
    with rawhttp.connect(proxy.port, timeout=duration + 10) as sock:
        sock.sendall(_body_head(len(body)))
        started = time.monotonic()
        sent = 0
        while time.monotonic() < until and not _readable(sock, 0.2):
            sock.sendall(body[sent:sent + 1])
            sent += 1
        answer = rawhttp.read_answer(sock, timeout=1.0)
        waited = time.monotonic() - started
    seen = calls.Answer(answer.status, answer.headers, answer.body, waited,
                        "" if answer.status else f"no answer in {waited:.1f} s")
    problems = [calls.family_error(seen, OPENAI, 408)]
    if answer.status and waited > ANSWER_WITHIN:
        problems.append(f"answered only after {waited:.1f} s")
    return row(GROUP, "body trickled 1 byte / 0.2 s (never a long pause)",
               f"408 in the family format within {ANSWER_WITHIN:g} s: the body deadline is a "
               "total, not a pause", problems,
               f"{answer.status or 'no answer'} after {waited:.1f} s ({sent} bytes sent)",
               seconds=round(waited, 2))


def _readable(sock, seconds: float) -> bool:
    return bool(select.select([sock], [], [], seconds)[0])


def never_reads(proxy, duration: float) -> Row:
    """A client that asks for a stream and never reads it (the upstream never stops)."""
    client = Client()
    stop = threading.Event()
    reader = threading.Thread(target=stalled_reader, args=(proxy.port, client, stop, ""),
                              daemon=True)
    reader.start()
    held = wait_for(lambda: proxy.value(GAUGE) == 1, 5.0)
    started = time.monotonic()
    freed = wait_for(lambda: proxy.value(GAUGE) == 0, duration + 10)
    waited = time.monotonic() - started
    cut = wait_for(lambda: client.cut_at is not None, 2.0)
    stop.set()
    reader.join(5)
    logged = [line.get("outcome") for line in proxy.request_logs()]
    problems = []
    if not held or not freed:
        problems.append("the stream's slot was never taken" if not held else
                        f"the slot is still held after {waited:.1f} s")
    if not cut:
        problems.append("the client's connection is still open")
    if "write_timeout" not in logged:
        problems.append(f"no request logged write_timeout (outcomes {logged})")
    if proxy.value("zai_proxy_client_timeouts_total", phase="write") != 1:
        problems.append("zai_proxy_client_timeouts_total{phase=write} is not 1")
    return row(GROUP, "client never reads its stream (connection held open)",
               f"cut after CLIENT_WRITE_TIMEOUT ({PROPOSED_TIMEOUT:g} s): slot freed, "
               "connection reset, logged write_timeout and counted", problems,
               f"slot freed {waited:.1f} s after the stream took it", seconds=round(waited, 2))
