"""Shared state: stop Redis under load, then restart it.

Two proxies (two pods, two workers each) share one Redis budget of RATE req/s; clients keep
both saturated. The documented choice (image/zai_proxy/ratelimit.py) is to fail open: while
Redis is away, each process admits on a local budget of rate/its pod's workers, so the two pods
together admit up to 2 × RATE; requests keep flowing (no 5xx, no 429), every process logs one
WARNING and counts zai_proxy_rate_limit_storage_errors_total. When Redis is back (and has been
retried: STORAGE_RETRY_INTERVAL, 5 s), the shared budget holds again across both pods.

Budgets count per one-second window, so over a phase of T seconds at most RATE × (T + 1) may
reach the upstream (one extra window for alignment).
"""

from __future__ import annotations

import time

from .harness import Stack, metric_sum, wait_for
from .load import KINDS, Load
from .table import Row, row
from tools.redis_server import RedisServer

GROUP = "shared-state"
RATE = 5
PODS = 2
WORKERS = 2


def proxy_env(redis_url: str) -> dict:
    return dict(WEB_CONCURRENCY=str(WORKERS), MAX_WORKERS="32", RATE_LIMIT_ENABLED="true",
                RATE_LIMIT_STORAGE_URI=redis_url, RATE_LIMIT_INITIAL=str(RATE),
                RATE_LIMIT_MIN=str(RATE), RATE_LIMIT_MAX=str(RATE), RATE_LIMIT_MAX_WAIT="30s")


def _arrivals(stack: Stack, start: float, end: float) -> int:
    chat = "/chat/completions"
    return sum(1 for r in stack.fake.requests if r.path.endswith(chat) and start <= r.time < end)


def _log_count(proxy, text: str) -> int:
    return sum(1 for line in proxy.log_lines() if text in line.get("msg", ""))


def run(stack: Stack, phase: float = 6.0, clients_per_pod: int = 6) -> list[Row]:
    redis = RedisServer(stack.dir / "redis").start()
    try:
        return _run(stack, redis, phase, clients_per_pod)
    finally:
        redis.stop()


def _run(stack: Stack, redis: RedisServer, phase: float, clients_per_pod: int) -> list[Row]:
    pods = [stack.proxy(**proxy_env(redis.url)) for _ in range(PODS)]
    chat = tuple(k for k in KINDS if k.name == "openai whole")
    loads = [Load(p.url, stack.fake.url, clients_per_pod, kinds=chat,
                  fresh_connection_every=0).start() for p in pods]
    rows = []

    time.sleep(1.0)                                    # queues fill; budget saturated
    shared_from = time.time()
    time.sleep(phase)
    shared_to = time.time()
    shared = _arrivals(stack, shared_from, shared_to)

    redis.stop()
    down_at = time.time()
    time.sleep(phase)
    down_to = time.time()
    during = _arrivals(stack, down_at + 1.0, down_to)   # past the requests in flight

    redis.start()
    back = wait_for(lambda: all(_log_count(p, "is back") >= _log_count(p, "failing open") > 0
                                for p in pods), timeout=20)
    time.sleep(1.0)
    again_from = time.time()
    time.sleep(phase)
    again_to = time.time()
    again = _arrivals(stack, again_from, again_to)
    results = [r for load in loads for r in load.stop()]

    failed = [r for r in results if r.status != 200]
    problems = [f"{len(failed)} of {len(results)} requests failed: "
                + ", ".join(sorted({str(r.status or r.error) for r in failed}))] if failed else []
    rows.append(row(GROUP, f"Redis stopped for {phase:g} s under load, then restarted",
                    "requests keep flowing: every answer 200", problems,
                    f"{len(results)} requests, all 200", requests=len(results)))

    problems = []
    for index, pod in enumerate(pods):
        errors = metric_sum(pod.metrics(), "zai_proxy_rate_limit_storage_errors_total")
        warnings = _log_count(pod, "failing open")
        if not errors:
            problems.append(f"pod {index}: storage_errors_total stayed 0")
        # One per process that met the outage (keep-alive clients may all sit on one worker).
        if not 1 <= warnings <= WORKERS:
            problems.append(f"pod {index}: {warnings} 'failing open' warnings, expected one "
                            f"per process that met the outage (1..{WORKERS})")
    if not back:
        problems.append("not every process logged that Redis is back")
    rows.append(row(GROUP, "the outage is recorded",
                    "storage_errors_total > 0; one WARNING per process; 'is back' logged",
                    problems, "counted, warned once per process, recovery logged"))

    def bound(seconds, pods):
        return pods * RATE * (seconds + 1)
    checks = [("shared budget before the outage", shared, shared_to - shared_from, 1),
              ("fail open: each pod on its own budget", during, down_to - down_at - 1.0, PODS),
              ("shared budget again after Redis is back", again, again_to - again_from, 1)]
    for name, count, seconds, pods_alone in checks:
        limit = bound(seconds, pods_alone)
        problems = [f"{count} upstream calls in {seconds:.1f} s, above {limit:.0f}"] \
            if count > limit else []
        if pods_alone == PODS and count < RATE * seconds * 0.5:
            problems.append(f"only {count} upstream calls in {seconds:.1f} s: not flowing")
        rows.append(row(GROUP, name, f"≤ {pods_alone} × {RATE}/s × (T + 1 s)", problems,
                        f"{count} calls in {seconds:.1f} s ({count / seconds:.1f}/s)",
                        calls=count, seconds=round(seconds, 1)))
    return rows
