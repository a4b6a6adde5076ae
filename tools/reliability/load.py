"""A sustained mix of streams and calls on both families, checked byte for byte.

    load = Load(proxy.url, stack.fake.url, clients=16).start()
    ...
    load.stop()
    load.results      # one Result per request, in completion order

Every request kind has a reference answer fetched from the fake directly; a result is `exact`
when the client received exactly those bytes. Some clients keep one keep-alive connection (as
SDKs do), others open a new connection per request (as curl, scripts and some gateways do).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time

import requests

from . import calls
from .calls import ANTHROPIC, OPENAI


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    method: str
    path: str                      # proxy path; the upstream path is derived by the fake
    upstream_path: str
    body: dict | None = None
    scenario: str | None = None

    @property
    def stream(self) -> bool:
        return bool(self.body and self.body.get("stream"))


STREAM = "ok;chunks=20;interval_ms=25"
KINDS = (
    Kind("openai whole", "POST", "/v1/chat/completions", calls.UPSTREAM_PATHS[OPENAI],
         calls.body(OPENAI, False)),
    Kind("openai stream", "POST", "/v1/chat/completions", calls.UPSTREAM_PATHS[OPENAI],
         calls.body(OPENAI, True), STREAM),
    Kind("anthropic whole", "POST", "/v1/messages", calls.UPSTREAM_PATHS[ANTHROPIC],
         calls.body(ANTHROPIC, False)),
    Kind("anthropic stream", "POST", "/v1/messages", calls.UPSTREAM_PATHS[ANTHROPIC],
         calls.body(ANTHROPIC, True), STREAM),
    Kind("embeddings", "POST", "/v1/embeddings", "/api/paas/v4/embeddings",
         {"model": "embedding-3", "input": ["one", "two"]}),
    Kind("models", "GET", "/v1/models", "/api/paas/v4/models"),
)


@dataclasses.dataclass
class Result:
    kind: str
    stream: bool
    started: float           # time.monotonic()
    ended: float
    status: int              # 0: no HTTP answer
    started_body: bool       # a 200 whose first body bytes had arrived
    exact: bool              # the whole answer is the upstream's, byte for byte
    error: str = ""          # exception name, when the exchange broke
    retry_after: str = ""
    body: bytes = b""        # kept for non-200 answers only (error bodies are small)


def references(fake_url: str, kinds=KINDS) -> dict[str, bytes]:
    out = {}
    for kind in kinds:
        headers = {"X-Fake-Scenario": kind.scenario} if kind.scenario else {}
        response = requests.request(kind.method, fake_url + kind.upstream_path, json=kind.body,
                                    headers=headers, timeout=30)
        response.raise_for_status()
        out[kind.name] = response.content
    return out


def send(session, url: str, kind: Kind, reference: bytes, timeout: float = 60.0) -> Result:
    headers = {"X-Fake-Scenario": kind.scenario} if kind.scenario else {}
    started = time.monotonic()
    status, started_body, data, error, retry_after = 0, False, b"", "", ""
    try:
        with session.request(kind.method, url + kind.path, json=kind.body, headers=headers,
                             stream=True, timeout=timeout) as response:
            status = response.status_code
            retry_after = response.headers.get("Retry-After", "")
            parts = []
            for chunk in response.iter_content(None):
                if status == 200:
                    started_body = True
                parts.append(chunk)
            data = b"".join(parts)
    except requests.RequestException as exc:
        error = type(exc).__name__
    exact = status == 200 and not error and data == reference
    return Result(kind.name, kind.stream, started, time.monotonic(), status, started_body,
                  exact, error, retry_after, b"" if status == 200 else data[:500])


class Load:
    def __init__(self, url: str, fake_url: str, clients: int, kinds=KINDS,
                 fresh_connection_every: int = 4, pause_after_503: float = 0.2):
        """Client i uses a new connection per request when i % fresh_connection_every == 0
        (0 disables that)."""
        self.url = url
        self.kinds = kinds
        self.refs = references(fake_url, kinds)
        self.clients = clients
        self.fresh_every = fresh_connection_every
        self.pause_after_503 = pause_after_503
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Load":
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True,
                                      name=f"load-{index}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 60.0) -> list[Result]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        return self.results

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def _client(self, index: int) -> None:
        fresh = self.fresh_every and index % self.fresh_every == 0
        session = requests.Session()
        kinds = itertools.islice(itertools.cycle(self.kinds), index % len(self.kinds), None)
        try:
            for kind in kinds:
                if self._stop.is_set():
                    return
                if fresh:
                    session.close()
                    session = requests.Session()
                result = send(session, self.url, kind, self.refs[kind.name])
                with self._lock:
                    self.results.append(result)
                if result.status == 503 or result.status == 0:
                    self._stop.wait(self.pause_after_503)
        finally:
            session.close()


def summary(results: list[Result]) -> dict:
    exact = sum(1 for r in results if r.exact)
    streams = sum(1 for r in results if r.stream and r.exact)
    span = (max(r.ended for r in results) - min(r.started for r in results)) if results else 0
    latencies = sorted(r.ended - r.started for r in results if r.exact and not r.stream)
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    return {"requests": len(results), "exact": exact, "streams": streams,
            "failed": len(results) - exact,
            "per_second": round(len(results) / span, 1) if span else 0.0,
            "call_p99_ms": round(p99 * 1000, 1)}
