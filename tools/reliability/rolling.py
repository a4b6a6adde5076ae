"""Rolling restart under load: SIGTERM to each worker in turn (gunicorn replaces it), then to the
master. No stream that had started may be lost, and new requests either succeed or get 503 with
Retry-After (the draining answer) — until the master has been told to stop, after which the
listener going away is the expected end.
"""

from __future__ import annotations

import json
import os
import signal
import time

from .harness import Stack, wait_for, wait_workers, workers
from .load import KINDS, Load, Result
from .table import Row, row

GROUP = "restart"
STREAM = "ok;chunks=40;interval_ms=50"     # 2 s streams: several are in flight at each SIGTERM


def proxy_env(worker_count: int) -> dict:
    return dict(WEB_CONCURRENCY=str(worker_count), MAX_WORKERS="48", GRACEFUL_TIMEOUT="30",
                RATE_LIMIT_ENABLED="false")


def _kinds():
    # Long streams of both families, and calls.
    from dataclasses import replace
    return tuple(replace(k, scenario=STREAM) if k.stream else k for k in KINDS)


def run(stack: Stack, worker_count: int = 2, clients: int = 12, settle: float = 1.0) -> list[Row]:
    proxy = stack.proxy(**proxy_env(worker_count))
    original = wait_workers(proxy, worker_count)
    # Keep-alive clients only: hang-ups after every answer would mix finding F8 into a verdict
    # about restarts (the soak covers both kinds of client).
    load = Load(proxy.url, stack.fake.url, clients, kinds=_kinds(),
                fresh_connection_every=0).start()
    time.sleep(settle + 1.0)
    signals: list[tuple[str, float]] = []
    problems: list[str] = []
    for pid in original:
        signals.append((f"worker {pid}", time.monotonic()))
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: pid not in workers(proxy) and
                        len(workers(proxy)) == worker_count, timeout=40):
            problems.append(f"worker {pid} was not replaced")
        time.sleep(settle)
    replaced = workers(proxy)
    master_at = time.monotonic()
    signals.append(("master", master_at))
    proxy.proc.send_signal(signal.SIGTERM)
    try:
        code = proxy.proc.wait(60)
    except Exception:   # noqa: BLE001 - reported as a problem below
        code = None
    # The clients keep going a moment after the master is gone: they must see refusals only.
    time.sleep(0.5)
    results = load.stop()

    verdict = judge(results, master_at)
    problems += verdict["problems"]
    if code != 0:
        problems.append(f"master exit code {code}")
    if set(replaced) & set(original):
        problems.append("some original workers were still running")
    # Streams under way at each SIGTERM (a stream lasts 2 s; the pod has them on every worker).
    across = [sum(1 for r in results if r.stream and r.started_body and r.started < at < r.ended)
              for _, at in signals]
    summary = (f"{verdict['streams']} streams completed byte for byte (in flight at each "
               f"SIGTERM: {', '.join(map(str, across))}), {verdict['ok']} calls 200, "
               f"{verdict['draining']} × 503 draining, {verdict['after_stop']} refused after "
               "the master's SIGTERM")
    return [row(GROUP, f"SIGTERM each of {worker_count} workers, then the master, under load",
                "no started stream lost; new requests 200 or 503 + Retry-After", problems,
                summary, streams_completed=verdict["streams"], in_flight_at_signal=across,
                draining_503=verdict["draining"], refused_after_stop=verdict["after_stop"],
                master_exit=code)]


def _draining(result: Result) -> bool:
    if result.status != 503 or not result.retry_after:
        return False
    try:
        error = json.loads(result.body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    # The worker's own draining answer, or its capacity answer (its peer's requests move to it
    # while it restarts): both 503 + Retry-After, in either family's format.
    return (error.get("code") in ("draining", "at_capacity")
            or error.get("type") == "overloaded_error")


def _code(result: Result) -> str:
    """What the answer said, so that a failure names it (the code, and Retry-After or not)."""
    try:
        error = json.loads(result.body)["error"]
        code = error.get("code") or error.get("type")
    except (ValueError, KeyError, TypeError, AttributeError):
        code = None
    return (f", {code}" if code else "") + (", no Retry-After" if not result.retry_after else "")


def judge(results: list[Result], master_at: float) -> dict:
    problems, streams, ok, draining, after_stop = [], 0, 0, 0, 0
    lost, bad = [], []
    for r in results:
        if r.exact:
            streams += r.stream
            ok += not r.stream
        elif r.started_body:
            lost.append(r)                 # bytes had arrived: the stream was cut
        elif _draining(r):
            draining += 1
        elif r.status == 0 and r.started >= master_at:
            after_stop += 1                # nobody listens any more: the expected end
        else:
            bad.append(r)
    if lost:
        problems.append(f"{len(lost)} started answers cut or altered: "
                        + ", ".join(sorted({f'{r.kind} ({r.error or r.status})' for r in lost})))
    if bad:
        problems.append(f"{len(bad)} requests failed before the master's SIGTERM: "
                        + ", ".join(sorted({f'{r.kind} ({r.error or r.status}'
                                            f'{_code(r)})' for r in bad})))
    return {"problems": problems, "streams": streams, "ok": ok, "draining": draining,
            "after_stop": after_stop}
