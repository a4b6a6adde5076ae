"""Runs the upstream fault matrix (faults.py) through a real gunicorn proxy.

For every fault × family × streaming: bursts of concurrent requests carrying the fault, then
  - each answer checked against the expectation (calls.py),
  - the metrics' deltas: upstream errors by error_type, retries by reason, Z.AI classes, requests
    by status (exact counts, and no other error type may move),
  - the concurrency gauge back to 0 (no slot leak),
  - the worker's thread count back to its baseline (the gthread pool is grown to its maximum
    first, so any extra thread is a leak),
  - the worker's RSS: after the first burst has warmed the allocator, later bursts of the same
    fault must not grow it by more than `rss_bound` (a leak grows with every request; an
    allocator's high-water mark does not).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses

import requests

from . import calls
from .faults import Expect, Fault, upstream_faults
from .raw_faults import script_for
from .harness import (MIB, Stack, closed_port_url, fill_thread_pools, metric_delta,
                      metric_sum, rss, settled_threads, steady_threads, wait_for, workers)
from .table import Row, row

GAUGE = "zai_proxy_concurrent_requests"
PATIENT_READ_TIMEOUT = "30s"
MAX_WORKERS = 16
THREADS = MAX_WORKERS + max(8, MAX_WORKERS // 4)   # gunicorn threads (config.threads_per_process)


@dataclasses.dataclass
class MatrixSettings:
    full: bool = False
    burst: int = 2              # concurrent requests per repetition
    reps: int = 1               # repetitions per cell (≥ 2 to judge memory)
    shards: int = 3             # cells run in this many parallel shards, each on its proxies
    counting: bool = False      # TOKEN_COUNTING_ENABLED: the accounting path of streams
    # UPSTREAM_READ_TIMEOUT of the proxies slow faults run on. 2 s, not 1 s: on a loaded 2-core
    # machine (bursts of 5 MB answers through the in-process fake in parallel shards, or two
    # suites at once) the fake was seen pausing a slow drip's writes past 1 s.
    read_timeout: str = "2s"
    # How far the last burst of a cell may lift the worker's RSS above the peak of the earlier
    # bursts: allocator noise. Faults with very large answers add 3 answers' worth, since which
    # thread's malloc arena holds a burst's buffers varies (measured: ±2 answers at 8 in flight).
    rss_bound: int = 4 * MIB


def proxy_env(settings: MatrixSettings) -> dict:
    return dict(RATE_LIMIT_ENABLED="false", WEB_CONCURRENCY="1", MAX_WORKERS=str(MAX_WORKERS),
                MAX_RETRIES="1", RETRY_BACKOFF_BASE="10ms", UPSTREAM_CONNECT_TIMEOUT="2s",
                UPSTREAM_READ_TIMEOUT=settings.read_timeout,
                TOKEN_COUNTING_ENABLED="true" if settings.counting else "false")


class Target:
    """A proxy under test with its single worker's baseline thread count."""

    def __init__(self, proxy):
        self.proxy = proxy
        [self.pid] = workers(proxy)
        fill_thread_pools(proxy, THREADS, 1)
        for family in calls.FAMILIES:            # load everything a request path imports
            for stream in (False, True):
                calls.send(proxy.url, family, stream)
        self.baseline_threads = steady_threads(self.pid)
        self.start_rss = rss(self.pid)


def run(stack: Stack, settings: MatrixSettings) -> list[Row]:
    """The matrix in `settings.shards` parallel shards, each on its own proxies (metrics,
    threads and RSS are per proxy, so shards cannot blur each other's figures)."""
    label = "upstream" + (" +counting" if settings.counting else "")
    faults = upstream_faults(settings.full)
    shards = shard(faults, settings.shards)
    with concurrent.futures.ThreadPoolExecutor(len(shards) + 1) as pool:
        clean = pool.submit(_clean_shard, stack, settings, label)
        done = [pool.submit(_run_shard, stack, part, settings, label) for part in shards]
        by_fault, tail = {}, []
        for future in done:
            cells, target_rows = future.result()
            by_fault.update(cells)
            tail += target_rows
        head = clean.result()
    return [head] + [r for fault in faults for r in by_fault[fault.name]] + tail


# A slow fault's cell waits out the short idle timeout on every attempt: about 16 s per
# attempt (4 requests of 2 s, 2 × 2 s for a stall…), where a quick fault's cell takes 0.5 s.
SLOW_WEIGHT = 32


def weight(faults: list[Fault]) -> int:
    """The faults' expected time in units of a quick fault's cell."""
    return sum(SLOW_WEIGHT * max(f.plain.attempts, f.stream.attempts) if f.slow else 1
               for f in faults)


def shard(faults: list[Fault], count: int) -> list[list[Fault]]:
    """`faults` in `count` shards of about equal expected time, each running on its own proxies.

    A shard starts one proxy per kind it holds (Fault.upstream, Fault.slow), and a gunicorn
    start costs about a second of CPU, so the quick faults stay together by upstream. The slow
    ones, each worth dozens of quick ones, are dealt out one by one. Heaviest first, each to the
    lightest shard so far."""
    quick: dict[str, list[Fault]] = {}
    for fault in faults:
        if not fault.slow:
            quick.setdefault(fault.upstream, []).append(fault)
    blocks = [[fault] for fault in faults if fault.slow] + list(quick.values())
    shards: list[list[Fault]] = [[] for _ in range(count)]
    for block in sorted(blocks, key=weight, reverse=True):
        min(shards, key=weight).extend(block)
    return shards


def _target(stack: Stack, kind: str, settings: MatrixSettings, slow: bool) -> Target:
    """A proxy for faults of upstream `kind`; only slow faults get the short idle timeout
    (see Fault.slow)."""
    env = proxy_env(settings)
    if not slow:
        env["UPSTREAM_READ_TIMEOUT"] = PATIENT_READ_TIMEOUT
    if kind == "closed":
        return Target(stack.proxy(closed_port_url(), **env))
    if kind == "raw":
        return Target(stack.proxy(stack.raw_faults().url, **env))
    return Target(stack.proxy(**env))


def _clean_shard(stack: Stack, settings: MatrixSettings, label: str) -> Row:
    target = _target(stack, "fake", settings, slow=False)
    return clean_traffic(target, label, 2000 if settings.full else 600)


def _run_shard(stack: Stack, faults: list[Fault], settings: MatrixSettings, label: str):
    targets: dict[tuple[str, bool], Target] = {}
    cells: dict[str, list[Row]] = {}
    for fault in faults:
        key = (fault.upstream, fault.slow)
        if key not in targets:
            targets[key] = _target(stack, fault.upstream, settings, fault.slow)
        target = targets[key]
        cells[fault.name] = [run_cell(stack, target, fault, family, stream, settings, label)
                             for family in calls.FAMILIES for stream in (False, True)]
    return cells, [_threads_row(label, kind + (", short idle timeout" if slow else ""), target)
                   for (kind, slow), target in targets.items()]


def clean_traffic(target: Target, group: str, count: int, concurrency: int = 8) -> Row:
    """No fault at all, clients that hang up after each answer (new connection per request):
    nothing may fail and the upstream may see no error."""
    proxy = target.proxy
    before = proxy.metrics()

    def one(i: int) -> int:
        return calls.send(proxy.url, calls.FAMILIES[i % 2], i % 4 >= 2).status

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(one, range(count)))
    wait_for(lambda: proxy.value(GAUGE) == 0)
    after = proxy.metrics()
    failed = sum(1 for status in statuses if status != 200)
    errors = metric_delta(before, after, "zai_proxy_upstream_errors_total")
    retries = metric_delta(before, after, "zai_proxy_retry_attempts_total")
    problems = []
    if failed or errors or retries:
        problems.append(f"{failed} of {count} answers not 200; upstream errors +{errors:g} "
                        f"{_by_label(before, after, 'zai_proxy_upstream_errors_total', 'error_type')}"
                        f"; retries +{retries:g}")
    return row(group, f"healthy upstream, {count} requests, new connection each",
               "all 200; no upstream error; no retry", problems,
               f"{count} × 200, no upstream error", finding="F8",
               failed=failed, upstream_errors=errors)


def _by_label(before: dict, after: dict, name: str, label: str) -> dict[str, float]:
    """The deltas of `name` per value of `label`, the non-zero ones: what kind of error moved."""
    values = {dict(labels).get(label) for (sample, labels) in after if sample == name}
    deltas = {value: metric_delta(before, after, name, **{label: value}) for value in values}
    return {value: delta for value, delta in sorted(deltas.items()) if delta}


def _reference(stack: Stack, fault: Fault, family: str, stream: bool, expect: Expect) -> bytes:
    if expect.kind == "error":
        return b""
    if fault.upstream == "raw":
        return script_for(fault.scenario, family, stream)[1]
    scenario = fault.scenario if fault.reference is None else (fault.reference or None)
    return calls.direct(stack.fake.url, family, stream, scenario)


def run_cell(stack: Stack, target: Target, fault: Fault, family: str, stream: bool,
             settings: MatrixSettings, group: str) -> Row:
    expect = fault.stream if stream else fault.plain
    proxy = target.proxy
    case = f"{fault.name} · {family} · {'stream' if stream else 'whole'}"
    reference = _reference(stack, fault, family, stream, expect)
    burst = max(1, settings.burst // 2) if fault.slow else settings.burst
    before = proxy.metrics()
    problems: list[str] = []
    sizes: list[int] = []
    # Keep-alive sessions, as SDK clients use: a client that hangs up after every answer
    # meets finding F8 (see clean_traffic), which would blur every other cell.
    sessions = [requests.Session() for _ in range(burst)]
    with concurrent.futures.ThreadPoolExecutor(burst) as pool:
        for _ in range(settings.reps):
            answers = list(pool.map(
                lambda s: calls.send(proxy.url, family, stream, fault.scenario, session=s),
                sessions))
            problems += [check(expect, answer, family, reference, fault) for answer in answers]
            sizes.append(rss(target.pid))
    count = burst * settings.reps
    after: dict = {}

    def settled() -> bool:
        # Slots come back, and requests are counted, when each response closes: just after
        # the client has read it.
        after.update(proxy.metrics())
        return metric_sum(after, GAUGE) == 0 and metric_delta(
            before, after, "zai_proxy_requests_total") >= count

    if not wait_for(settled, timeout=10):
        problems.append(f"concurrency gauge at {metric_sum(after, GAUGE):g} after the burst")
    for session in sessions:   # only now: every exchange has finished (F8)
        session.close()
    problems += metric_problems(before, after, expect, count)
    now_threads = settled_threads(target.pid, target.baseline_threads)
    if now_threads != target.baseline_threads:
        problems.append(f"worker threads {target.baseline_threads} → {now_threads}")
    # A leak grows RSS with every burst; the allocator's high-water mark is reached by the
    # first bursts and then only moves around. So the last burst must not lift RSS above the
    # highest level seen after the earlier ones by more than the bound.
    growth = sizes[-1] - max(sizes[:-1]) if len(sizes) > 1 else 0
    bound = settings.rss_bound + 3 * fault.answer_bytes
    if growth > bound:
        problems.append(f"RSS +{growth / MIB:.1f} MiB in the last burst, above the earlier "
                        f"peak (bound {bound / MIB:.0f} MiB)")
    summary = f"{count} × as expected; gauge 0; threads {now_threads}"
    if len(sizes) > 1:
        summary += f"; RSS last burst {growth / MIB:+.1f} MiB"
    return row(group, case, expect.describe(), problems, summary, expect.finding,
               rss_last_burst_mib=round(growth / MIB, 2),
               rss_cell_mib=round((sizes[-1] - sizes[0]) / MIB, 2), requests=count)


def check(expect: Expect, answer: calls.Answer, family: str, reference: bytes,
          fault: Fault) -> str:
    if expect.kind == "error":
        problem = calls.family_error(answer, family, expect.status, expect.code)
    elif expect.kind == "stream_error":
        problem = calls.stream_error(answer, family, expect.code, reference)
    else:
        problem = calls.verbatim(answer, expect.status, reference)
    if problem:
        return problem
    headers = {k.lower(): v for k, v in answer.headers.items()}
    if expect.retry_after and not headers.get("retry-after"):
        return f"{answer.status} without Retry-After"
    if not expect.retry_after and expect.should_retry == "false" and "retry-after" in headers:
        return f"{answer.status} with Retry-After {headers['retry-after']!r} where no retry helps"
    if expect.should_retry == "absent":
        if "x-should-retry" in headers:
            return f"x-should-retry {headers['x-should-retry']!r} where the client decides"
    elif expect.should_retry and headers.get("x-should-retry") != expect.should_retry:
        return f"x-should-retry {headers.get('x-should-retry')!r}, expected " \
               f"{expect.should_retry!r}"
    if expect.zai_class and headers.get("x-zai-error-class") != expect.zai_class:
        return f"X-Zai-Error-Class {headers.get('x-zai-error-class')!r}, " \
               f"expected {expect.zai_class!r}"
    return ""


def metric_problems(before: dict, after: dict, expect: Expect, count: int) -> list[str]:
    problems = []

    def expect_delta(name, wanted, what, **labels):
        got = metric_delta(before, after, name, **labels)
        if got != wanted:
            problems.append(f"{what} +{got:g}, expected +{wanted:g}")

    errors = count * expect.attempts if expect.error_type else 0
    if expect.error_type:
        expect_delta("zai_proxy_upstream_errors_total", errors,
                     f"upstream_errors{{{expect.error_type}}}", error_type=expect.error_type)
    moved = _by_label(before, after, "zai_proxy_upstream_errors_total", "error_type")
    expect_delta("zai_proxy_upstream_errors_total", errors, f"upstream_errors {moved}")
    retries = count * (expect.attempts - 1)
    if expect.retry_reason:
        expect_delta("zai_proxy_retry_attempts_total", retries,
                     f"retries{{{expect.retry_reason}}}", reason=expect.retry_reason)
    expect_delta("zai_proxy_retry_attempts_total", retries, "retries (all reasons)")
    if expect.zai_class:
        expect_delta("zai_proxy_zai_errors_total", count * expect.attempts,
                     f"zai_errors{{{expect.zai_class},{expect.zai_code}}}",
                     **{"class": expect.zai_class, "code": expect.zai_code})
    status = 200 if expect.kind in ("ok", "stream_error") else expect.status
    expect_delta("zai_proxy_requests_total", count, f"requests{{{status}}}",
                 status_code=str(status))
    return problems


def _threads_row(group: str, name: str, target: Target) -> Row:
    now = settled_threads(target.pid, target.baseline_threads)
    growth = rss(target.pid) - target.start_rss
    problems = [] if now == target.baseline_threads else \
        [f"threads {target.baseline_threads} → {now}"]
    return row(group, f"whole matrix, upstream {name}",
               "threads back to baseline; RSS growth reported", problems,
               f"threads {now} (pool full); RSS {growth / MIB:+.1f} MiB over the matrix",
               rss_growth_mib=round(growth / MIB, 2), threads=now)
