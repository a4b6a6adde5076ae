"""Load generators, measuring at the client. Both run in their own process, pinned to the
environment core, so the orchestrator's sampling never steals time from them.

- Non-streaming: `wrk` (C, epoll; closed loop with C connections = C concurrent clients) with
  bench/wrk.lua. It costs a few percent of a core at the rates seen here.
- Streaming: `python -m bench.load stream ...`, an asyncio + aiohttp client (C parser) that
  timestamps every SSE event as it arrives: time to first token, gaps between content events,
  content events lost, and streams that failed. It reports its own CPU time, so a saturated
  client is visible in the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

from .procs import ROOT, pinned
from .stats import summary

# A content delta with text (the fake's words never start with a quote); the final chunk's empty
# content and LiteLLM's `delta: {}` do not count.
CONTENT = re.compile(rb'"content":\s*"[^"]')
DONE = b"data: [DONE]"


def chat_body(model: str, prompt: str, stream: bool) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


# -- wrk --------------------------------------------------------------------------------------
def run_wrk(url: str, headers: dict, body: bytes, connections: int, duration: int,
            cpus: str | None, timeout: float = 30.0) -> dict:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is missing: `make bench` installs it (scripts/install-tools.sh)")
    env = dict(os.environ, WRK_BODY=body.decode(),
               WRK_AUTHORIZATION=headers.get("Authorization", ""))
    cmd = pinned(["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout",
                  f"{timeout:g}s", "-s", str(ROOT / "bench" / "wrk.lua"), url], cpus)
    started = time.monotonic()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line[len("WRK_JSON "):])
            break
    else:
        raise RuntimeError(f"wrk gave no result (rc={out.returncode}):\n{out.stdout}\n"
                           f"{out.stderr}")
    seconds = result["duration_us"] / 1e6
    errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors",
                                     "status_errors", "timeouts"))
    lat = result["latency_us"]
    return {
        "requests": result["requests"], "seconds": round(seconds, 3),
        "throughput_rps": round(result["requests"] / seconds, 1) if seconds else 0.0,
        "errors": errors, "error_detail": {k: result[k] for k in (
            "connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")},
        "latency_ms": {"mean": round(result["latency_mean_us"] / 1000, 3),
                       "p50": lat["50"] / 1000, "p90": lat["90"] / 1000,
                       "p99": lat["99"] / 1000, "p99.9": lat["99.9"] / 1000,
                       "max": result["latency_max_us"] / 1000},
        "wall_s": round(time.monotonic() - started, 2),
    }


# -- streaming client -------------------------------------------------------------------------
def run_streams(url: str, headers: dict, model: str, concurrency: int, streams_per_client: int,
                expect_chunks: int, cpus: str | None, prompt_chars: int = 10,
                timeout: float = 120.0, warmup_streams: int = 0, stagger_s: float = 0.0) -> dict:
    """Spawn the streaming client in its own process and return its JSON report."""
    cmd = pinned([sys.executable, "-m", "bench.load", "stream", "--url", url, "--model", model,
                  "--concurrency", str(concurrency), "--streams-per-client",
                  str(streams_per_client), "--expect-chunks", str(expect_chunks),
                  "--timeout", str(timeout), "--prompt-chars", str(prompt_chars),
                  "--warmup-streams", str(warmup_streams), "--stagger-s", str(stagger_s)], cpus)
    env = dict(os.environ, BENCH_AUTHORIZATION=headers.get("Authorization", ""))
    budget = timeout * (streams_per_client + warmup_streams) + stagger_s + 60
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget)
    if out.returncode != 0:
        raise RuntimeError(f"stream client failed (rc={out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class _Totals:
    def __init__(self):
        self.ttft: list[float] = []
        self.gaps: list[float] = []
        self.first_at: list[float] = []
        self.streams = 0
        self.ok = 0
        self.lost = 0
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def _one_stream(session, url, headers, body, expect, totals: _Totals, origin: float):
    """One stream; counts it as ok, or as exactly one error kind, and its lost content events
    (those missing from a 200 stream, whether it ended cleanly or broke off)."""
    import aiohttp
    totals.streams += 1
    started = time.perf_counter()
    arrivals: list[float] = []
    done = False
    failure = None
    status = None
    try:
        async with session.post(url, data=body, headers=headers) as response:
            status = response.status
            if status != 200:
                await response.read()
                failure = f"status_{status}"
            else:
                pending = b""
                async for data in response.content.iter_any():
                    now = time.perf_counter()
                    pending += data
                    cut = pending.rfind(b"\n\n")
                    if cut < 0:
                        continue
                    complete, pending = pending[:cut], pending[cut + 2:]
                    arrivals.extend([now] * len(CONTENT.findall(complete)))
                    if DONE in complete:
                        done = True
    except asyncio.TimeoutError:
        failure = "timeout"
    except aiohttp.ClientError as exc:
        failure = type(exc).__name__
    if arrivals:
        totals.ttft.append((arrivals[0] - started) * 1000)
        totals.first_at.append(arrivals[0] - origin)
        totals.gaps.extend((b - a) * 1000 for a, b in zip(arrivals, arrivals[1:]))
    if status == 200:
        totals.lost += max(0, expect - len(arrivals))
    if failure is None and not done:
        failure = "no_done"
    if failure is None and len(arrivals) < expect:
        failure = "lost_chunks"
    if failure is None:
        totals.ok += 1
    else:
        totals.error(failure)


async def _stream_main(args) -> dict:
    import aiohttp
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if os.environ.get("BENCH_AUTHORIZATION"):
        headers["Authorization"] = os.environ["BENCH_AUTHORIZATION"]
    prompt = ("Say hello. " * (args.prompt_chars // 11 + 1))[:args.prompt_chars]
    body = chat_body(args.model, prompt, stream=True)
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency,
                                     ttl_dns_cache=None, enable_cleanup_closed=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout, sock_connect=30)
    totals, scratch = _Totals(), _Totals()
    origin = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     auto_decompress=False) as session:
        async def client(index: int):
            # Staggered starts and unmeasured warm-up streams: the measured streams overlap in
            # a steady state instead of starting (and restarting) in lockstep.
            await asyncio.sleep(args.stagger_s * index / max(args.concurrency, 1))
            for _ in range(args.warmup_streams):
                await _one_stream(session, args.url, headers, body, args.expect_chunks,
                                  scratch, origin)
            for _ in range(args.streams_per_client):
                await _one_stream(session, args.url, headers, body, args.expect_chunks, totals,
                                  origin)

        await asyncio.gather(*(client(i) for i in range(args.concurrency)))
    wall = time.perf_counter() - origin
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "streams": totals.streams, "ok": totals.ok, "errors": totals.errors,
        "error_count": sum(totals.errors.values()), "lost_chunks": totals.lost,
        "warmup": {"streams": scratch.streams, "ok": scratch.ok, "errors": scratch.errors,
                   "lost_chunks": scratch.lost},
        "ttft_ms": summary(totals.ttft), "gap_ms": summary(totals.gaps),
        "all_first_token_s": round(max(totals.first_at), 3) if totals.first_at else None,
        "wall_s": round(wall, 3), "client_cpu_s": round(cpu, 3),
        "client_cpu_share": round(cpu / wall, 3) if wall else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    sub = parser.add_subparsers(dest="mode", required=True)
    stream = sub.add_parser("stream", help="concurrent SSE streams, timed per event")
    stream.add_argument("--url", required=True)
    stream.add_argument("--model", required=True)
    stream.add_argument("--concurrency", type=int, default=1)
    stream.add_argument("--streams-per-client", type=int, default=1)
    stream.add_argument("--expect-chunks", type=int, required=True)
    stream.add_argument("--timeout", type=float, default=120.0)
    stream.add_argument("--prompt-chars", type=int, default=10)
    stream.add_argument("--warmup-streams", type=int, default=0,
                        help="streams per client before the measured ones (not in the stats)")
    stream.add_argument("--stagger-s", type=float, default=0.0,
                        help="client i starts after stagger * i / concurrency seconds")
    args = parser.parse_args(argv)
    result = asyncio.run(_stream_main(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
