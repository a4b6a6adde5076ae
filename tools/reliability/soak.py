"""The soak: a sustained mix of streams and calls, then the bill: errors, RSS growth, threads.

Two worker processes with token counting and the rate limiter on (a budget far above the load,
so admission runs on every request without ever waiting). The upstream never fails, so every
failed answer, upstream error or retry is the proxy's doing.

Memory: RSS of each worker is sampled throughout. The first 20 % of the run (at most 60 s) warms
caches and allocator arenas; growth is measured from the end of warm-up to the end of the run and
must stay under `rss_bound` per worker. A leak of 1 KB per request would exceed it many times
over in the full 10-minute run (hundreds of thousands of requests).
"""

from __future__ import annotations

import threading
import time

from .harness import (MIB, Stack, fill_thread_pools, metric_delta, rss, steady_threads,
                      wait_for, wait_workers)
from .load import Load, summary
from .table import Row, row

GROUP = "load"
WORKERS = 2
MAX_WORKERS = 32
THREADS = MAX_WORKERS // WORKERS + 8      # gunicorn threads per worker (threads_per_process)
RSS_BOUND = 8 * MIB
F_POOLED_SOCKET = "F8"


def _f8_shaped(before: dict, after: dict, failed: list) -> bool:
    """Whether every failure looks like finding F8 (a pooled upstream connection shut down
    under another request): only connection-level upstream errors, and clients that saw either
    a stream cut by an error event or a 502 after the retries. Anything else stays a plain
    mismatch, so the soak keeps catching other regressions while F8 is open."""
    f8_types = {"upstream_connection", "upstream_reset", "read_error", "empty_streaming"}
    grown = set()
    for name, labels in after:
        if name == "zai_proxy_upstream_errors_total":
            kind = dict(labels)["error_type"]
            if metric_delta(before, after, name, error_type=kind) > 0:
                grown.add(kind)
    answers_ok = all((r.status == 200 and r.stream) or r.status == 502 for r in failed)
    return grown <= f8_types and answers_ok


def proxy_env() -> dict:
    return dict(WEB_CONCURRENCY=str(WORKERS), MAX_WORKERS=str(MAX_WORKERS),
                TOKEN_COUNTING_ENABLED="true",
                RATE_LIMIT_ENABLED="true", RATE_LIMIT_INITIAL="2000", RATE_LIMIT_MIN="2000",
                RATE_LIMIT_MAX="2000", RATE_LIMIT_MAX_WAIT="5s")


def run(stack: Stack, seconds: float, clients: int = 12, rss_bound: int = RSS_BOUND
        ) -> list[Row]:
    proxy = stack.proxy(**proxy_env())
    pids = wait_workers(proxy, WORKERS)
    # Full pools first: then any thread the run adds is a leak, not the pool growing.
    fill_thread_pools(proxy, THREADS, WORKERS)
    base_threads = {pid: steady_threads(pid) for pid in pids}
    before = proxy.metrics()
    samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in pids}
    stop = threading.Event()
    interval = min(5.0, max(1.0, seconds / 20))

    def sample():
        while not stop.is_set():
            for pid in pids:
                samples[pid].append((time.monotonic(), rss(pid)))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    load = Load(proxy.url, stack.fake.url, clients)
    started = time.monotonic()
    load.start()
    sampler.start()
    warmup = min(60.0, seconds * 0.2)
    time.sleep(seconds)
    results = load.stop()
    stop.set()
    sampler.join()
    elapsed = time.monotonic() - started
    for pid in pids:
        samples[pid].append((time.monotonic(), rss(pid)))
    idle = wait_for(lambda: proxy.value("zai_proxy_concurrent_requests") == 0, 10)
    after = proxy.metrics()
    stats = summary(results)

    rows = []
    failed = [r for r in results if not r.exact]
    upstream_errors = metric_delta(before, after, "zai_proxy_upstream_errors_total")
    retries = metric_delta(before, after, "zai_proxy_retry_attempts_total")
    problems = []
    if failed:
        kinds = sorted({f"{r.kind}: " + (r.error or (f"{r.status} cut or altered"
                                                   if r.status == 200 else str(r.status)))
                        for r in failed})
        problems.append(f"{len(failed)} of {len(results)} answers wrong ({', '.join(kinds)})")
    if upstream_errors or retries:
        problems.append(f"upstream errors +{upstream_errors:g}, retries +{retries:g} against a "
                        "healthy upstream")
    if not idle:
        problems.append("concurrency gauge not back to 0")
    finding = F_POOLED_SOCKET if problems and idle and _f8_shaped(before, after, failed) else ""
    rows.append(row(GROUP, f"soak {seconds:g} s, {clients} clients, {WORKERS} workers",
                    "every answer byte-exact; no upstream error or retry", problems,
                    f"{stats['requests']} requests ({stats['streams']} streams), "
                    f"{stats['per_second']}/s, p99 call {stats['call_p99_ms']} ms, 0 failed",
                    finding, **stats, upstream_errors=upstream_errors,
                    retries=retries, seconds=round(elapsed, 1)))

    growth = {}
    for pid in pids:
        warm = [size for at, size in samples[pid] if at - started <= warmup]
        growth[pid] = samples[pid][-1][1] - (warm[-1] if warm else samples[pid][0][1])
    worst = max(growth.values())
    problems = [f"worker {pid} RSS +{g / MIB:.1f} MiB after warm-up (bound "
                f"{rss_bound / MIB:.0f} MiB)" for pid, g in growth.items() if g > rss_bound]
    final = {pid: samples[pid][-1][1] for pid in pids}
    rows.append(row(GROUP, "soak: RSS growth after warm-up",
                    f"≤ {rss_bound / MIB:.0f} MiB per worker", problems,
                    ", ".join(f"worker {pid}: {g / MIB:+.1f} MiB (now {final[pid] / MIB:.0f} "
                              "MiB)" for pid, g in growth.items()),
                    rss_growth_mib={str(p): round(g / MIB, 2) for p, g in growth.items()},
                    rss_final_mib={str(p): round(v / MIB, 1) for p, v in final.items()},
                    worst_growth_mib=round(worst / MIB, 2)))

    # A worker runs its pool, its main loop and the disconnect watcher: any thread beyond
    # a full pool + 2, or beyond what it had after the pools were filled, is a leak.
    now_threads = {pid: steady_threads(pid) for pid in pids}
    problems = [f"worker {pid} threads {base_threads[pid]} → {now_threads[pid]}"
                for pid in pids if now_threads[pid] > max(base_threads[pid], THREADS + 2)]
    rows.append(row(GROUP, "soak: threads after the run",
                    f"≤ full pool ({THREADS}) + main loop + watcher", problems,
                    ", ".join(f"worker {pid}: {base_threads[pid]} → {n}"
                              for pid, n in now_threads.items())))
    return rows
