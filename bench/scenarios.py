"""The five scenarios of issue 6. Each returns its raw runs; `analyze.py` turns them into figures.

Repetitions are interleaved (rep 1 of every contestant, then rep 2...) and the contestant order
rotates each repetition, so a slow drift of the machine (other work on it) spreads over all
contestants instead of landing on one.
"""

from __future__ import annotations

import dataclasses
import math
import time

from . import contestants as C
from .load import chat_body, run_streams, run_wrk
from .meter import Meter
from .procs import Sampler

PROMPT = "Say hello."


@dataclasses.dataclass
class Plan:
    reps: int = 3
    # 1. non-streaming: wrk closed loop, C connections = C clients
    ns_levels: tuple = (1, 16, 64)
    ns_seconds: int = 2          # wrk takes whole seconds
    ns_model: str = "glm-4.7@ok;chunks=20"
    # 2. streaming: 40 content events 25 ms apart (1 s, ~40 events/s per stream, a fast GLM)
    st_levels: tuple = (1, 64, 256)
    st_chunks: int = 40
    st_model: str = "glm-4.7@ok;chunks=40;interval_ms=25"
    st_measured: dict = dataclasses.field(default_factory=lambda: {1: 2, 64: 1, 256: 1})
    st_warmup: int = 1
    st_stagger_s: float = 0.5
    # 3. held concurrency: slow streams (7 events 500 ms apart, 3 s), opened over 1 s, so all
    # are open together for about 2 s; a stream that takes over held_timeout_s is an error
    held_levels: tuple = (250, 500, 1000, 2000)
    held_chunks: int = 7
    held_model: str = "glm-4.7@ok;chunks=7;interval_ms=500"
    held_stagger_s: float = 1.0
    held_timeout_s: float = 30.0
    held_budget_s: float = 40.0   # per contestant: no higher level is started past it
    held_contestants: tuple = ("direct", "production", "canary", "litellm", "nginx")
    # 4. token-counting cost: long prompt (non-streaming), long output (streamed)
    tok_prompt_chars: int = 32_000
    tok_prompt_seconds: int = 1
    tok_prompt_model: str = "glm-4.7@ok;chunks=20;prompt_tokens=8000"
    tok_output_chunks: int = 1000
    tok_output_model: str = "glm-4.7@ok;chunks=1000;interval_ms=2"
    tok_output_concurrency: int = 16   # enough CPU per run for psutil's 10 ms ticks
    # 5. steady state: RSS of a fresh production proxy over 100k non-streaming requests
    steady_total: int = 100_000
    steady_first: int = 1_000
    steady_step: int = 10_000
    steady_concurrency: int = 64
    # MAX_WORKERS for the zai-proxy contestants (the values' 20/10 would shed with 503)
    max_workers: int = 512
    # A run slower than this is not repeated (LiteLLM at high concurrency): its cell has n=1.
    slow_run_s: float = 15.0

    @classmethod
    def quick(cls) -> "Plan":
        """A smoke run (a minute or two) that exercises every code path with small numbers."""
        return cls(reps=1, ns_seconds=1, st_measured={1: 1, 64: 1, 256: 1},
                   st_levels=(1, 16, 64), st_stagger_s=0.3, held_levels=(50, 100),
                   held_model="glm-4.7@ok;chunks=4;interval_ms=300",
                   held_chunks=4, held_stagger_s=0.3, tok_prompt_seconds=1,
                   tok_output_chunks=200,
                   tok_output_model="glm-4.7@ok;chunks=200;interval_ms=2",
                   tok_output_concurrency=4, steady_total=5_000, steady_first=500,
                   steady_step=1_500, max_workers=128)


@dataclasses.dataclass
class Context:
    plan: Plan
    layout: C.Layout
    work: object
    fake: object
    origin: str
    running: dict = dataclasses.field(default_factory=dict)
    log: object = print
    baseline: str | None = None   # git revision the `baseline` contestant runs from


class _Slow:
    """Cells (contestant, level) whose run took longer than plan.slow_run_s: not repeated."""

    def __init__(self, plan: Plan, log):
        self.limit, self.log, self.cells = plan.slow_run_s, log, set()

    def skip(self, name, level) -> bool:
        return (name, level) in self.cells

    def note(self, name, level, seconds: float) -> None:
        if seconds > self.limit and (name, level) not in self.cells:
            self.cells.add((name, level))
            self.log(f"    {name} took {seconds:.0f} s at {level}: not repeated")


def _order(names, rep: int) -> list:
    names = list(names)
    shift = rep % len(names)
    return names[shift:] + names[:shift]


def start_all(ctx: Context, names=C.NAMES) -> None:
    for name in names:
        if name not in ctx.running:
            ctx.log(f"  starting {name}")
            ctx.running[name] = C.start(name, ctx.origin, ctx.work, ctx.layout,
                                        ctx.plan.max_workers, ctx.baseline)


def stop_all(ctx: Context) -> None:
    for running in ctx.running.values():
        if running.tree is not None:
            running.tree.stop()
    ctx.running.clear()


def warm_up(ctx: Context) -> None:
    """Pools, threads, lazy imports and tiktoken's tables loaded before anything is measured."""
    plan, env = ctx.plan, ctx.layout.environment
    for name, r in ctx.running.items():
        run_wrk(r.url, r.headers, chat_body(plan.ns_model, PROMPT, False), 16, 1.0, env)
        run_streams(r.url, r.headers, plan.st_model, 16, 1, plan.st_chunks, env)
        run_wrk(r.url, r.headers, chat_body(plan.tok_prompt_model, "x " * 2000, False), 2, 1,
                env)


# -- 1. non-streaming -------------------------------------------------------------------------
def nonstreaming(ctx: Context) -> dict:
    plan = ctx.plan
    body = chat_body(plan.ns_model, PROMPT, False)
    runs = {name: {str(level): [] for level in plan.ns_levels} for name in ctx.running}
    for rep in range(plan.reps):
        for level in plan.ns_levels:
            for name in _order(ctx.running, rep):
                r = ctx.running[name]
                with Meter(r.tree, ctx.fake) as meter:
                    result = run_wrk(r.url, r.headers, body, level, plan.ns_seconds,
                                     ctx.layout.environment)
                result.update(meter.record(result["requests"]))
                result["rep"] = rep + 1
                runs[name][str(level)].append(result)
                ctx.log(f"  rep {rep + 1} c={level:<3} {name:<10} "
                        f"{result['throughput_rps']:>8.0f} req/s  p50 "
                        f"{result['latency_ms']['p50']:.2f} ms  p99 "
                        f"{result['latency_ms']['p99']:.2f} ms  errors {result['errors']}")
    return {"model": plan.ns_model, "seconds_per_run": plan.ns_seconds,
            "levels": list(plan.ns_levels), "runs": runs}


# -- 2. streaming -----------------------------------------------------------------------------
def streaming(ctx: Context) -> dict:
    plan = ctx.plan
    runs = {name: {str(level): [] for level in plan.st_levels} for name in ctx.running}
    slow = _Slow(plan, ctx.log)
    for rep in range(plan.reps):
        for level in plan.st_levels:
            for name in _order(ctx.running, rep):
                if slow.skip(name, level):
                    continue
                r = ctx.running[name]
                with Meter(r.tree, ctx.fake) as meter:
                    result = run_streams(r.url, r.headers, plan.st_model, level,
                                         plan.st_measured.get(level, 1), plan.st_chunks,
                                         ctx.layout.environment, warmup_streams=plan.st_warmup,
                                         stagger_s=plan.st_stagger_s)
                result.update(meter.record(result["streams"] + result["warmup"]["streams"]))
                result["rep"] = rep + 1
                runs[name][str(level)].append(result)
                slow.note(name, level, result["wall_s"])
                ctx.log(f"  rep {rep + 1} streams={level:<3} {name:<10} ttft p50 "
                        f"{result['ttft_ms']['p50']} ms  gap p99 {result['gap_ms']['p99']} ms"
                        f"  lost {result['lost_chunks']}  errors {result['error_count']}")
    return {"model": plan.st_model, "chunks": plan.st_chunks, "levels": list(plan.st_levels),
            "measured_streams_per_client": {str(k): v for k, v in plan.st_measured.items()},
            "warmup_streams_per_client": plan.st_warmup, "stagger_s": plan.st_stagger_s,
            "runs": runs}


# -- 4. token-counting cost -------------------------------------------------------------------
def token_cost(ctx: Context) -> dict:
    plan, env = ctx.plan, ctx.layout.environment
    prompt = ("The quick brown fox jumps over the lazy dog. " * (plan.tok_prompt_chars // 45 + 1)
              )[:plan.tok_prompt_chars]
    prompt_body = chat_body(plan.tok_prompt_model, prompt, False)
    names = [n for n in ctx.running if n != "direct"]
    runs = {name: {"long_prompt": [], "long_output": []} for name in names}
    slow = _Slow(plan, ctx.log)
    for rep in range(plan.reps):
        for name in _order(names, rep):
            if slow.skip(name, "token cost"):
                continue
            r = ctx.running[name]
            with Meter(r.tree, ctx.fake) as meter:
                result = run_wrk(r.url, r.headers, prompt_body, 4, plan.tok_prompt_seconds, env)
            result.update(meter.record(result["requests"]))
            runs[name]["long_prompt"].append(result)
            with Meter(r.tree, ctx.fake) as meter:
                result = run_streams(r.url, r.headers, plan.tok_output_model,
                                     plan.tok_output_concurrency, 1, plan.tok_output_chunks, env)
            result.update(meter.record(result["streams"]))
            runs[name]["long_output"].append(result)
            slow.note(name, "token cost", result["wall_s"])
            ctx.log(f"  rep {rep + 1} {name:<10} long prompt "
                    f"{runs[name]['long_prompt'][-1]['contestant_cpu_us_per_request']} us/req, "
                    f"long output {result['contestant_cpu_us_per_request']} us/stream "
                    f"(errors {result['error_count']}, lost {result['lost_chunks']})")
    return {"prompt_chars": plan.tok_prompt_chars, "prompt_model": plan.tok_prompt_model,
            "output_model": plan.tok_output_model, "output_chunks": plan.tok_output_chunks,
            "output_concurrency": plan.tok_output_concurrency, "runs": runs}


# -- 3. held concurrency ----------------------------------------------------------------------
def _held_level(ctx: Context, r, level: int) -> dict:
    plan = ctx.plan
    sampler = Sampler(r.tree) if r.tree else None
    with Meter(r.tree, ctx.fake) as meter:
        if sampler:
            sampler.__enter__()
        try:
            result = run_streams(r.url, r.headers, plan.held_model, level, 1, plan.held_chunks,
                                 ctx.layout.environment, timeout=plan.held_timeout_s,
                                 stagger_s=plan.held_stagger_s)
        finally:
            if sampler:
                sampler.__exit__(None, None, None)
    result.update(meter.record(result["streams"]))
    result["level"] = level
    if sampler:
        result["rss_peak_bytes"] = sampler.peak
        result["threads_after"] = r.tree.threads()
    return result


def held(ctx: Context) -> dict:
    plan, env = ctx.plan, ctx.layout.environment
    max_workers = max(plan.held_levels) + 64
    results = {}
    for name in plan.held_contestants:
        ctx.log(f"  {name}: fresh process")
        r = C.start(name, ctx.origin, ctx.work, ctx.layout, max_workers, ctx.baseline)
        started = time.monotonic()
        skipped = []
        try:
            run_streams(r.url, r.headers, plan.st_model, 8, 2, plan.st_chunks, env)
            time.sleep(0.5)
            base = r.tree.rss_bytes() if r.tree else None
            # The direct path only shows that the fake and the client hold the largest level.
            levels_to_run = plan.held_levels[-1:] if r.tree is None else plan.held_levels
            levels = []
            for index, level in enumerate(levels_to_run):
                if time.monotonic() - started > plan.held_budget_s:
                    skipped = list(levels_to_run[index:])
                    ctx.log(f"    time budget ({plan.held_budget_s:.0f} s) spent: levels "
                            f"{skipped} not tried")
                    break
                result = _held_level(ctx, r, level)
                if r.tree:
                    result["rss_base_bytes"] = base
                    result["rss_per_stream_bytes"] = round((result["rss_peak_bytes"] - base)
                                                           / level)
                levels.append(result)
                extra = (f"  RSS +{(result['rss_peak_bytes'] - base) / 2**20:.1f} MiB "
                         f"({result['rss_per_stream_bytes'] / 1024:.0f} KiB/stream)"
                         if r.tree else "")
                ctx.log(f"    {level:>5} streams: ok {result['ok']} errors "
                        f"{result['error_count']} lost {result['lost_chunks']}, all first "
                        f"tokens after {result['all_first_token_s']} s{extra}")
                if result["error_count"]:
                    break
            results[name] = {"settings": r.settings, "rss_base_bytes": base, "levels": levels,
                             "not_tried_time_budget": skipped}
        finally:
            if r.tree:
                r.tree.stop()
    return {"model": plan.held_model, "chunks": plan.held_chunks,
            "levels": list(plan.held_levels), "stagger_s": plan.held_stagger_s,
            "timeout_s": plan.held_timeout_s, "budget_s": plan.held_budget_s,
            "max_workers": max_workers, "results": results}


# -- 5. steady state --------------------------------------------------------------------------
def steady(ctx: Context, name: str = "production") -> dict:
    """Slices of wrk load; after each, the proxy's memory (checkpoints near 1k, then every
    ~10k requests, wherever a slice ends)."""
    plan, env = ctx.plan, ctx.layout.environment
    body = chat_body(plan.ns_model, PROMPT, False)
    r = C.start(name, ctx.origin, ctx.work, ctx.layout, plan.max_workers)
    points, total, errors = [], 0, 0
    try:
        rate = 500.0
        while total < plan.steady_total:
            want = plan.steady_first if total == 0 else min(plan.steady_step,
                                                            plan.steady_total - total)
            with Meter(r.tree, ctx.fake) as meter:
                result = run_wrk(r.url, r.headers, body, plan.steady_concurrency,
                                 max(1, math.ceil(want / rate)), env)
            total += result["requests"]
            errors += result["errors"]
            rate = max(result["throughput_rps"], 50.0)
            time.sleep(0.3)  # let in-flight bookkeeping settle before reading memory
            points.append({"requests": total, "rss_bytes": r.tree.rss_bytes(),
                           "pss_bytes": r.tree.pss_bytes(), "threads": r.tree.threads(),
                           "throughput_rps": result["throughput_rps"],
                           "contestant_cpu_us_per_request":
                               meter.record(result["requests"])["contestant_cpu_us_per_request"]})
            ctx.log(f"  {name}: {total:>7} requests  RSS {points[-1]['rss_bytes'] / 2**20:.1f} "
                    f"MiB  ({result['throughput_rps']:.0f} req/s)")
    finally:
        r.tree.stop()
    return {"contestant": name, "concurrency": plan.steady_concurrency, "model": plan.ns_model,
            "total_requests": total, "errors": errors, "points": points}
