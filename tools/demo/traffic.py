"""Client traffic through the official `openai` and `anthropic` SDKs, as real users send it.

Each variant gets a paced, closed-loop stream of requests: OpenAI chat and Anthropic messages,
streamed and whole, spread over the variant's pods like a Service would; at most `rate` per
second and at most `workers` in flight (8 keep a latency-faulted canary near its rate while
staying below its MAX_WORKERS of 10, so the fault never turns into capacity 503s). What the
fake upstream does with each request is decided by its index, not by chance, so a run is
reproducible and its ratios are exact:
- every 40th request (index 29, 69, 109, ...) first gets a Z.AI 429, alternately code 1302
  (concurrency) and 1305 (frequency), which the proxy retries; 2.5% of requests (1.25% counted by
  the adaptive limiter, which ignores 1302) keeps its 5% edge and the 429 alerts out of reach,
  and the first comes late enough that the few requests of a fresh 5m window are not skewed by it
  (a 1 s retry among 10 requests would put the p95 above production's);
- every 10th answer carries no usage (as Z.AI streams sometimes do), so the canary estimates;
- a canary fault (`fault=` or DEMO_CANARY_FAULT), from `fault_after` seconds on, hits every 5th
  canary request: `errors` makes it an upstream HTTP 500 (a class the proxy never retries, so the
  client sees a 5xx), `latency` delays its answer by LATENCY_FAULT_MS, beyond the chart's 10 s p95
  threshold.
Rates stay below the values files' RATE_LIMIT_INITIAL (10 req/s), so the adaptive limiter admits
everything at once; the demo does not change any rate-limit setting.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from dataclasses import dataclass

from tools.demo.pods import Pod
from tools.sdks import anthropic, anthropic_client, openai, openai_client

FAULTS = ("none", "errors", "latency")
LATENCY_FAULT_MS = 11_000
CLIENT_KEY = "demo-client-key"  # the values files set no PROXY_API_KEYS: any key is accepted
MODELS = ("glm-4.7", "glm-4.5-air", "glm-4.6")


@dataclass(frozen=True)
class Plan:
    """What request number `index` of a variant is."""
    surface: str        # "openai" or "anthropic"
    stream: bool
    model: str
    scenario: str       # the X-Fake-Scenario header
    faulty: bool


def plan(variant: str, index: int, fault: str = "none") -> Plan:
    surface = "openai" if index % 2 == 0 else "anthropic"
    stream = (index // 2) % 2 == 0
    model = MODELS[(index // 4) % len(MODELS)]
    # Realistic shapes: streams of a few deltas 20-50 ms apart, whole answers after 50-250 ms.
    spread = (index * 37) % 5
    shape = {"chunks": 4 + spread, "prompt_tokens": 20 + 7 * spread,
             "interval_ms": 20 + 7 * spread} if stream else {
        "chunks": 4 + spread, "prompt_tokens": 20 + 7 * spread, "first_delay_ms": 50 + 50 * spread}
    if index % 10 == 5:
        shape["no_usage"] = 1
    faulty = variant == "canary" and fault != "none" and index % 5 == 2
    if faulty and fault == "latency":
        shape["first_delay_ms"] = LATENCY_FAULT_MS
    keys = ";".join(f"{k}={v}" for k, v in shape.items())
    if faulty and fault == "errors":
        scenario = f"status;status=500;{keys}"
    elif index % 40 == 29:
        code = 1302 if (index // 40) % 2 == 0 else 1305
        scenario = f"fail_first;n=1;key={variant}-{index};fail_with=error;code={code};{keys}"
    else:
        scenario = f"ok;{keys}"
    return Plan(surface, stream, model, scenario, faulty)


class _Clients:
    def __init__(self, pod: Pod, timeout: float):
        self.openai = openai_client(base_url=pod.url + "/v1", api_key=CLIENT_KEY,
                                    max_retries=0, timeout=timeout)
        self.anthropic = anthropic_client(base_url=pod.url, api_key=CLIENT_KEY,
                                             max_retries=0, timeout=timeout)

    def close(self) -> None:
        self.openai.close()
        self.anthropic.close()


def send(clients: _Clients, p: Plan) -> str:
    """One request; returns its outcome: the HTTP status, or the client error's name."""
    headers = {"X-Fake-Scenario": p.scenario}
    messages = [{"role": "user", "content": "Say hello to the demo."}]
    try:
        if p.surface == "openai":
            if p.stream:
                stream = clients.openai.chat.completions.create(
                    model=p.model, messages=messages, stream=True,
                    stream_options={"include_usage": True}, extra_headers=headers)
                for _ in stream:
                    pass
            else:
                clients.openai.chat.completions.create(model=p.model, messages=messages,
                                                       extra_headers=headers)
        else:
            if p.stream:
                stream = clients.anthropic.messages.create(model=p.model, max_tokens=256,
                                                           messages=messages, stream=True,
                                                           extra_headers=headers)
                for _ in stream:
                    pass
            else:
                clients.anthropic.messages.create(model=p.model, max_tokens=256,
                                                  messages=messages, extra_headers=headers)
        return "200"
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        return str(exc.status_code)
    except (openai.APIError, anthropic.APIError) as exc:
        return type(exc).__name__
    except Exception as exc:  # e.g. a stream cut while the stack stops: counted, never raised
        return type(exc).__name__


class Traffic:
    """Paced traffic to every variant; `start()`, `stop()`, `outcomes[variant][outcome]`."""

    def __init__(self, pods: dict[str, list[Pod]], rates: dict[str, float] | None = None,
                 fault: str = "none", fault_after: float = 0.0, workers: int = 8,
                 timeout: float = 60.0):
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        self.pods = pods
        self.rates = rates or {"production": 4.0, "canary": 3.0}
        self.fault = fault
        self.fault_after = fault_after
        self.workers = workers
        self.timeout = timeout
        self.outcomes: dict[str, collections.Counter] = {v: collections.Counter() for v in pods}
        self._clients = {v: [_Clients(p, timeout) for p in ps] for v, ps in pods.items()}
        self._next = {v: 0 for v in pods}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._pace_offset = 0.0
        self.in_flight = 0
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0

    def fault_active(self) -> bool:
        return self.fault != "none" and time.monotonic() - self.started_at >= self.fault_after

    def _take(self, variant: str) -> int:
        with self._lock:
            index = self._next[variant]
            self._next[variant] += 1
            return index

    def _worker(self, variant: str) -> None:
        clients = self._clients[variant]
        rate = self.rates[variant]
        while not self._stop.is_set():
            index = self._take(variant)
            # Paced: request `index` is due `index / rate` seconds after the start (plus pauses).
            while True:
                due = self.started_at + self._pace_offset + index / rate
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                if self._resumed.is_set():
                    break
                self._resumed.wait(0.1)
            p = plan(variant, index, self.fault if self.fault_active() else "none")
            with self._lock:
                self.in_flight += 1
            # Spread over the pods like a Service (a fixed shuffle, not round-robin by kind).
            try:
                outcome = send(clients[(index * 7 + index // 3) % len(clients)], p)
            finally:
                with self._lock:
                    self.in_flight -= 1
            with self._lock:
                self.outcomes[variant][outcome] += 1

    @contextlib.contextmanager
    def paused(self, settle: float = 10.0):
        """No new request inside the block (those in flight finish first, up to `settle` s);
        afterwards the pacing resumes where it was, without a burst to catch up."""
        began = time.monotonic()
        self._resumed.clear()
        deadline = began + settle
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            yield
        finally:
            self._pace_offset += time.monotonic() - began
            self._resumed.set()

    def start(self) -> "Traffic":
        self.started_at = time.monotonic()
        for variant in self.pods:
            for n in range(self.workers):
                thread = threading.Thread(target=self._worker, args=(variant,), daemon=True,
                                          name=f"traffic-{variant}-{n}")
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop sending; requests in flight finish (or time out) first."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            return  # a request still in flight keeps its client; it ends with the stack
        for clients in self._clients.values():
            for c in clients:
                c.close()

    def totals(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {v: dict(c) for v, c in self.outcomes.items()}


@contextlib.contextmanager
def held_streams(pod: Pod, count: int, seconds: float):
    """`count` OpenAI streams to `pod` that stay open about `seconds`; yields the outcomes list,
    filled as they end."""
    chunks = max(2, int(seconds * 10))
    p = Plan("openai", True, MODELS[0], f"ok;chunks={chunks};interval_ms=100", False)
    outcomes: list[str] = []
    clients = _Clients(pod, timeout=seconds + 30)
    threads = [threading.Thread(target=lambda: outcomes.append(send(clients, p)), daemon=True)
               for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        for thread in threads:
            thread.join(seconds + 30)
        clients.close()
