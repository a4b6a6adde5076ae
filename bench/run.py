"""`make bench`: every contestant, every scenario, one run; writes bench/results/latest.json and
bench/results/summary.md with its charts.

    python -m bench.run [--quick] [--only nonstreaming,streaming,token_cost,held,steady]
                        [--reps N] [--out DIR] [--contestants ...] [--baseline REV]
                        [--ns-levels 1,16,64]

--baseline REV adds the contestant `baseline`: production's settings run from git revision REV,
interleaved with the others, so a change is measured against its predecessor in one run.

--quick is a smoke run (a minute or two, one repetition, small numbers): its results are not
comparable with a full run and it writes to bench/results/raw/quick/ unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

from . import analyze, report
from . import contestants as C
from . import scenarios as S
from .procs import ROOT, raise_fd_limit

SCENARIOS = ("nonstreaming", "streaming", "token_cost", "held", "steady")


def _version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def meta(layout: C.Layout, plan: S.Plan, quick: bool) -> dict:
    commit = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "kernel": platform.release()},
        "layout": {"contestant_cpus": layout.contestant,
                   "environment_cpus": layout.environment,
                   "meaning": "each contestant runs alone on the contestant CPU(s); the fake "
                              "upstream and the load generator share the environment CPU(s), "
                              "identically for every contestant (direct included)"},
        "versions": {"python": platform.python_version(), "zai_proxy_commit": commit,
                     "litellm": C.litellm_version(), "nginx": _version(["nginx", "-v"]),
                     "wrk": _version(["wrk", "-v"])},
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "plan": {k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
                 for k, v in vars(plan).items()},
        "settings": {
            "zai_proxy": "WEB_CONCURRENCY=1; DEPLOYMENT_VARIANT, TOKEN_COUNTING_ENABLED and "
                         "LOG_LEVEL from values/values-<variant>.yaml; RATE_LIMIT_ENABLED=false "
                         "(the adaptive limiter paces to Z.AI's budget, tens of req/s: we measure "
                         "the proxy, not the budget); MAX_WORKERS raised to the scenario's "
                         f"concurrency ({plan.max_workers}; held-concurrency: largest level + 64) "
                         "instead of the values' 20/10, which would shed with 503",
            "litellm": "litellm (pinned, bench/requirements-litellm.txt) --num_workers 1, "
                       "bench/litellm_config.yaml: openai/* pass-through to the fake, master key "
                       "set (it refuses to start without one), no database, no callbacks",
            "nginx": "worker_processes 1, proxy_pass + proxy_buffering off, upstream keepalive "
                     "(bench/nginx.conf.tmpl)",
            "direct": "the client calls the fake upstream itself",
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="smoke run with small numbers")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--out", default=None, help="results directory")
    parser.add_argument("--contestants", default=",".join(C.NAMES),
                        help=f"comma-separated subset of {','.join(C.ORDER)} (direct is always "
                             "run: every figure is read against it)")
    parser.add_argument("--ns-levels", default=None, metavar="C,C,…",
                        help="non-streaming concurrency levels (default 1,16,64)")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also run production's settings from git revision REV (contestant "
                             "`baseline`)")
    parser.add_argument("--keep-work", action="store_true", help="keep process logs")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    names = ["direct"] + [n.strip() for n in args.contestants.split(",")
                          if n.strip() and n.strip() != "direct"]
    if args.baseline and "baseline" not in names:
        names.append("baseline")
    if "baseline" in names and not args.baseline:
        parser.error("the baseline contestant needs --baseline REV")
    if set(names) - set(C.ORDER):
        parser.error(f"unknown contestant(s): {', '.join(sorted(set(names) - set(C.ORDER)))}")
    plan = S.Plan.quick() if args.quick else S.Plan()
    plan.held_contestants = tuple(n for n in C.ORDER if n in names)
    if args.reps:
        plan.reps = args.reps
    if args.ns_levels:
        plan.ns_levels = tuple(int(c) for c in args.ns_levels.split(","))
    out_dir = Path(args.out) if args.out else (
        ROOT / "bench" / "results" / ("raw/quick" if args.quick else ""))
    out_dir.mkdir(parents=True, exist_ok=True)

    fds = raise_fd_limit()
    layout = C.Layout.detect()
    work = Path(tempfile.mkdtemp(prefix="zai-bench-"))
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    raw = {"meta": meta(layout, plan, args.quick), "scenarios": {}, "contestants": {}}
    raw["meta"]["open_files_limit"] = fds
    if args.baseline:
        raw["meta"]["versions"]["baseline_revision"] = args.baseline
    raw["meta"]["command"] = " ".join(["python -m bench.run", *(argv if argv is not None
                                                                 else sys.argv[1:])]).strip()
    log(f"layout: contestant on CPU {layout.contestant}, fake + load generator on CPU "
        f"{layout.environment}; load average {os.getloadavg()[0]:.2f}; work dir {work}")
    fake, origin = C.start_fake(work, layout)
    ctx = S.Context(plan=plan, layout=layout, work=work, fake=fake, origin=origin, log=log,
                    baseline=args.baseline)
    ok = False
    try:
        shared = [s for s in ("nonstreaming", "streaming", "token_cost") if s in only]
        if shared:
            log("starting contestants")
            S.start_all(ctx, names)
            raw["contestants"] = {n: {"label": C.LABELS[n], "settings": r.settings}
                                  for n, r in ctx.running.items()}
            log("warm-up")
            S.warm_up(ctx)
            for name in shared:
                log(f"scenario {name}")
                raw["scenarios"][name] = getattr(S, name)(ctx)
            S.stop_all(ctx)
        if "held" in only:
            log("scenario held (fresh processes)")
            raw["scenarios"]["held"] = S.held(ctx)
        if "steady" in only and "production" in names:
            log("scenario steady (fresh production proxy)")
            raw["scenarios"]["steady"] = S.steady(ctx)
        ok = True
    finally:
        S.stop_all(ctx)
        fake.stop()
        if ok and not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"process logs kept in {work}")

    raw["meta"]["duration_s"] = round(time.monotonic() - started, 1)
    raw["meta"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    raw["figures"] = analyze.analyze(raw)
    (out_dir / "latest.json").write_text(json.dumps(raw, indent=1) + "\n")
    report.write(raw, out_dir)
    log(f"wrote {out_dir / 'latest.json'} and {out_dir / 'summary.md'} "
        f"({raw['meta']['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
