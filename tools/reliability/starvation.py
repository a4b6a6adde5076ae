"""Thread starvation: while crowds of clients misbehave, /livez, /readyz and /metrics must answer
within 1 s (the chart's probe timeout is 3 s), and a slow client is cut off after a total deadline.

The attacks, each a crowd of client threads on real sockets (pytest's tests/test_starvation.py
runs small ones against gunicorn; `make reliability` runs them at the sizes of issue 10):
  trickle_head     unauthenticated: the request head, one byte at a time
  slow_upload      authenticated: a complete head, then the body one byte at a time
  silent           open a connection, send nothing, reconnect after `hold` seconds
  stalled_reader   authenticated: ask for a stream and never read it

Each client records when its misbehaviour had begun (`started_at`) and when the proxy cut it
(`cut_at`, with the status it answered, if any), so a check can tell whether a probe was answered
while the whole crowd was still in place.
"""

from __future__ import annotations

import dataclasses
import json
import select
import socket
import struct
import threading
import time
from typing import Callable

import requests

from tools.raw_upstream import RawUpstream, chunk, head as response_head, response

from . import calls
from .calls import OPENAI, PROXY_PATHS
from .harness import Stack
from .table import Row, row

GROUP = "starvation"
# An upstream stream that does not end: 64 KiB events, until the proxy stops reading.
ENDLESS_STREAM = [response_head(200, [("Content-Type", "text/event-stream"),
                                      ("Transfer-Encoding", "chunked")])] \
    + [chunk(b"data: " + b"y" * 65_000 + b"\n\n")] * 4000
PROBE_PATHS = ("/livez", "/readyz", "/metrics")
PROBE_BOUND = 1.0            # seconds: what must hold for every probe during every attack
_TCP_CLOSE, _TCP_CLOSE_WAIT = 7, 8


@dataclasses.dataclass
class Client:
    started_at: float | None = None    # its misbehaviour had begun (connected, first bytes sent)
    cut_at: float | None = None        # the proxy closed the connection
    status: int = 0                    # what the proxy answered before closing it (0: nothing)
    connections: int = 0


class Crowd:
    """`count` clients each running `behave(port, client, stop, **options)` in its own thread."""

    def __init__(self, port: int, count: int, behave: Callable, **options):
        self.clients = [Client() for _ in range(count)]
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True,
                                          args=(behave, port, client, self.stopping, options))
                         for client in self.clients]

    @staticmethod
    def _run(behave, port, client, stop, options):
        try:
            behave(port, client, stop, **options)
        except OSError:
            if client.cut_at is None:
                client.cut_at = time.monotonic()

    def start(self, timeout: float = 20.0) -> "Crowd":
        """Start every client; returns once each has begun misbehaving."""
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + timeout
        while any(c.started_at is None and c.cut_at is None for c in self.clients):
            if time.monotonic() > deadline:
                raise TimeoutError("the attack's clients did not all start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(10)

    @property
    def first_cut(self) -> float | None:
        cuts = [c.cut_at for c in self.clients if c.cut_at is not None]
        return min(cuts) if cuts else None

    def cut(self) -> list[Client]:
        return [c for c in self.clients if c.cut_at is not None]

    def __enter__(self) -> "Crowd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _closed_within(sock: socket.socket, client: Client, seconds: float) -> bool:
    """Wait up to `seconds`; True (and the cut recorded) if the proxy answered or closed."""
    readable, _, _ = select.select([sock], [], [], seconds)
    if not readable:
        return False
    data = b""
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except OSError:
        pass
    client.cut_at = client.cut_at or time.monotonic()
    if data.startswith(b"HTTP/1."):
        client.status = int(data.split(b" ", 2)[1])
    return True


def _trickle(sock, client: Client, stop, data: bytes, interval: float) -> None:
    for index in range(len(data)):
        if stop.is_set():
            return
        sock.sendall(data[index:index + 1])
        if client.started_at is None:
            client.started_at = time.monotonic()
        if _closed_within(sock, client, interval):
            return


def head(method: str, path: str, headers: dict, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: proxy"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def trickle_head(port: int, client: Client, stop, interval: float = 0.5) -> None:
    """Unauthenticated: a head that never ends in time, one byte every `interval`."""
    client.connections += 1
    with _connect(port) as sock:
        _trickle(sock, client, stop, head("GET", "/v1/models", {"X-Pad": "p" * 4000}), interval)


def slow_upload(port: int, client: Client, stop, key: str, interval: float = 1.0,
                size: int = 100_000) -> None:
    """Authenticated: a complete head, then the body one byte every `interval`."""
    body = json.dumps(dict(calls.body(OPENAI, False), pad="x" * size)).encode()
    client.connections += 1
    with _connect(port) as sock:
        sock.sendall(head("POST", PROXY_PATHS[OPENAI], {
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"}, len(body)))
        _trickle(sock, client, stop, body, interval)


def silent(port: int, client: Client, stop, hold: float | None = None) -> None:
    """Open a connection and send nothing; after `hold` seconds (None: never) close it and open
    another, until stopped."""
    while not stop.is_set():
        client.connections += 1
        with _connect(port) as sock:
            if client.started_at is None:
                client.started_at = time.monotonic()
            until = time.monotonic() + (hold if hold is not None else 3600.0)
            while not stop.is_set() and time.monotonic() < until:
                if _closed_within(sock, client, 0.1):
                    if hold is None:
                        return
                    break


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the proxy has closed the connection, without reading what it sent."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return struct.unpack("B", info[:1])[0] in (_TCP_CLOSE, _TCP_CLOSE_WAIT)


def stalled_reader(port: int, client: Client, stop, key: str) -> None:
    """Authenticated: ask for a stream, then never read a byte of it."""
    body = json.dumps(calls.body(OPENAI, True)).encode()
    client.connections += 1
    with _connect(port, rcvbuf=4096) as sock:
        sock.sendall(head("POST", PROXY_PATHS[OPENAI], {
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"}, len(body))
            + body)
        client.started_at = time.monotonic()
        while not stop.wait(0.1):
            if _peer_closed(sock):
                client.cut_at = time.monotonic()
                return


# Probes ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Probe:
    path: str
    status: int | str          # the status, or the exception's name
    seconds: float
    answered_at: float


def probe(url: str, path: str, timeout: float = 30.0) -> Probe:
    """One GET on a new connection, as the kubelet and Prometheus do."""
    started = time.monotonic()
    try:
        status: int | str = requests.get(url + path, timeout=timeout,
                                         headers={"Connection": "close"}).status_code
    except requests.RequestException as exc:
        status = type(exc).__name__
    now = time.monotonic()
    return Probe(path, status, now - started, now)


def probe_for(url: str, seconds: float, every: float = 0.25,
              timeout: float = 30.0) -> list[Probe]:
    """Probe every path in turn, every `every` seconds, for `seconds`."""
    out: list[Probe] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for path in PROBE_PATHS:
            out.append(probe(url, path, timeout))
        time.sleep(every)
    return out


def worst(probes: list[Probe]) -> dict[str, float]:
    return {path: round(max(p.seconds for p in probes if p.path == path), 3)
            for path in PROBE_PATHS}


def probe_problems(probes: list[Probe], bound: float = PROBE_BOUND) -> list[str]:
    problems = []
    for p in probes:
        if p.status != 200:
            problems.append(f"{p.path} answered {p.status} after {p.seconds:.1f} s")
        elif p.seconds > bound:
            problems.append(f"{p.path} took {p.seconds:.2f} s (bound {bound:g} s)")
    return problems[:4]


# The group for `make reliability` -----------------------------------------------------------
KEY = "starvation-client-key"
COMPLETION = json.dumps({"id": "c", "object": "chat.completion", "model": "glm-4.7",
                         "choices": [{"index": 0, "finish_reason": "stop", "message": {
                             "role": "assistant", "content": "hello"}}]}).encode()
# (case, clients, behaviour, options, what an authenticated call made meanwhile gets)
ATTACKS = (
    ("60 unauthenticated clients trickling headers (1 byte / 0.5 s)", 60, trickle_head,
     {"interval": 0.5}, 200),
    # Authenticated uploads do hold threads, each until its body deadline: another call would
    # wait for one (docs/reliability.md), so none is made; the probes are what must not wait.
    ("18 authenticated uploads at 1 byte/s (one per thread)", 18, slow_upload, {"key": KEY},
     None),
    ("100 connections that open, wait 3 s and reconnect", 100, silent, {"hold": 3.0}, 200),
    # Every MAX_WORKERS slot streams to a client that does not read: 503 at once is right.
    ("10 authenticated clients that never read their stream (MAX_WORKERS)", 10, stalled_reader,
     {"key": KEY}, 503),
)


def upstream_answer(request) -> list:
    """The raw upstream's answer: an endless stream when one is asked for, else a completion."""
    if json.loads(request.body or b"{}").get("stream"):
        return ENDLESS_STREAM
    return response(200, COMPLETION, content_type="application/json")


def run(stack: Stack, seconds: float) -> list[Row]:
    """Each attack at issue 10's size for `seconds` against a proxy on default settings (one
    worker, MAX_WORKERS=10, 18 threads, 10 s / 60 s / 60 s client deadlines) with client keys,
    probing all along; an authenticated call is made in the middle of each attack."""
    rows = []
    with RawUpstream() as upstream:
        upstream.handler = upstream_answer
        for case, count, behave, options, expected_call in ATTACKS:
            proxy = stack.proxy(upstream_url=upstream.url, PROXY_API_KEYS=KEY,
                                RATE_LIMIT_ENABLED="false")
            with Crowd(proxy.port, count, behave, **options):
                probes = probe_for(proxy.url, seconds / 2)
                call = _authenticated_call(proxy.url) if expected_call else None
                probes += probe_for(proxy.url, seconds / 2)
            proxy.stop()
            problems = probe_problems(probes)
            expected = f"/livez, /readyz, /metrics within {PROBE_BOUND:g} s throughout"
            figures = worst(probes)
            observed = ", ".join(f"{path} ≤ {s:.2f} s" for path, s in figures.items()) \
                + f" ({len(probes)} probes)"
            if call is not None:
                expected += f"; an authenticated call answered {expected_call}"
                observed += f"; call {call.status} in {call.seconds:.2f} s"
                if call.status != expected_call:
                    problems.append(f"an authenticated call got {call.status or call.error} "
                                    f"after {call.seconds:.1f} s")
            rows.append(row(GROUP, case, expected, problems, observed, probes=len(probes),
                            worst_seconds=figures,
                            call_seconds=round(call.seconds, 3) if call else None))
    return rows


def _authenticated_call(url: str) -> calls.Answer:
    started = time.monotonic()
    try:
        answer = requests.post(url + PROXY_PATHS[OPENAI], json=calls.body(OPENAI, False),
                               headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    except requests.RequestException as exc:
        return calls.Answer(0, {}, b"", time.monotonic() - started, type(exc).__name__)
    return calls.Answer(answer.status_code, dict(answer.headers), answer.content,
                        time.monotonic() - started)
