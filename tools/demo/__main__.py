"""`make demo`: `python -m tools.demo [--duration S] [--out DIR]`, no cluster and no Z.AI key.

Starts the stack (stack.py: fake Z.AI, both variants' pods configured from `helm template`, a real
Prometheus configured from the chart's ServiceMonitors and PrometheusRules) and the dashboard
service pointed at both variants' pods (dashboard.py), sends SDK traffic (traffic.py;
DEMO_CANARY_FAULT=errors|latency|none makes the canary worse from `--fault-after` seconds on),
prints every `--every` seconds what each dashboard panel shows per variant and the alert states,
and writes out/demo/ (report.py, plus screenshots of the dashboard service's page). It stops
everything it started on exit, on Ctrl-C and on SIGTERM: a first signal ends the run early and
still writes the report, a second one skips the report; the children are then stopped whatever
happens (they also get SIGTERM from the kernel should this process die without cleaning up).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from tools.demo import report
from tools.demo.dashboard import DashboardService, build_ui, screenshots
from tools.demo.prometheus import duration, seconds
from tools.demo.stack import ROOT, Stack, StackSettings
from tools.demo.traffic import FAULTS, Traffic


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float,
                        default=float(os.environ.get("DEMO_DURATION", 180)),
                        help="seconds of traffic (DEMO_DURATION, default 180)")
    parser.add_argument("--fault", default=os.environ.get("DEMO_CANARY_FAULT", "none") or "none",
                        choices=FAULTS, help="canary fault (DEMO_CANARY_FAULT, default none)")
    parser.add_argument("--fault-after", type=float, default=30.0,
                        help="seconds of healthy traffic before the fault starts")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument("--interval", default="5s", help="scrape and rule evaluation interval")
    parser.add_argument("--for-factor", type=float, default=10.0,
                        help="alerts' `for` divided by this in the demo's rules copy")
    parser.add_argument("--rate-interval", default=None,
                        help="$__rate_interval for the panels (default: 4 x --interval, as "
                             "Grafana computes it from the scrape interval)")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between tables")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the processes' logs and Prometheus data (path printed)")
    args = parser.parse_args(argv)
    if args.rate_interval is None:
        args.rate_interval = duration(4 * seconds(args.interval))
    seconds(args.rate_interval)  # fails early on a bad duration
    return args


class Signals:
    """SIGINT/SIGTERM: raise while starting, then ask the loop to stop; a second one raises."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.raising = True
        self.cleaning = False
        self.signum = 0

    def handler(self, signum, frame) -> None:
        if self.cleaning:
            print("zai-proxy demo: still stopping the processes it started...", flush=True)
            return
        first = not self.stop.is_set()
        self.signum = self.signum or signum
        self.stop.set()
        if self.raising or not first:
            raise KeyboardInterrupt
        print(f"\nzai-proxy demo: {signal.Signals(signum).name}, ending the run "
              "(again to skip the report)", flush=True)

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.handler)
        signal.signal(signal.SIGTERM, self.handler)


def extra(args, traffic: Traffic | None, started: float) -> dict:
    return {
        "fault": args.fault,
        "fault_after_seconds": args.fault_after,
        "duration_seconds": round(time.monotonic() - started),
        "scrape_interval": args.interval,
        "rate_interval": args.rate_interval,
        "for_factor": args.for_factor,
        "for_5m": duration(max(1.0, round(300 / args.for_factor))),
        "traffic": traffic.totals() if traffic else {},
        "rules_note": "alerts evaluated from a copy of the chart's rendered PrometheusRules with "
                      f"every `for` divided by {args.for_factor:g}; expressions are the chart's",
    }


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (as the user typed)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_snapshot(snap: report.Snapshot, elapsed: float, traffic: Traffic) -> None:
    print(f"\n=== t+{elapsed:.0f}s  canary fault: {traffic.fault}"
          f"{' (active)' if traffic.fault_active() else ''}  requests: "
          + "  ".join(f"{v} {sum(c.values())} {dict(sorted(c.items()))}"
                      for v, c in traffic.totals().items()), flush=True)
    print(report.table(snap))
    print(report.alerts_text(snap.alerts), flush=True)


def run(args: argparse.Namespace, signals: Signals) -> int:
    # A previous run's files go first, so out/ never mixes two runs.
    for old in [*args.out.glob("panel-*.png"), *args.out.glob("dashboard*.png"),
                args.out / "summary.json", args.out / "report.md"]:
        old.unlink(missing_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="zai-proxy-demo-"))
    stack = Stack(workdir, StackSettings(interval=args.interval, for_factor=args.for_factor))
    atexit.register(stack.stop)
    traffic = None
    dashboard = None
    started = time.monotonic()
    interrupted = 0
    try:
        print("zai-proxy demo: rendering the chart and starting the fake Z.AI, both variants and "
              "Prometheus...", flush=True)
        stack.start()
        for pod in stack.all_pods():
            print(f"  {pod.namespace}/{pod.name:<36} {pod.url}")
        print(f"  Prometheus (open it while the demo runs): {stack.prometheus.url}")
        build_ui()
        # A one-minute verdict window, so the verdict follows the canary fault within the run.
        dashboard = DashboardService(
            workdir, {v: [f"{p.url}/metrics" for p in pods] for v, pods in stack.pods.items()},
            interval=args.interval, verdict_window="1m").start()
        print(f"  Dashboard (open it while the demo runs): {dashboard.url}")
        print(f"  canary fault: {args.fault}"
              + (f" from t+{args.fault_after:.0f}s" if args.fault != "none" else "")
              + f"; {args.duration:.0f}s of traffic; alerts' `for` divided by {args.for_factor:g}",
              flush=True)
        traffic = Traffic(stack.pods, fault=args.fault, fault_after=args.fault_after).start()
        started, started_wall = time.monotonic(), time.time()
        signals.raising = False
        peaks: dict[str, str] = {}
        while True:
            left = args.duration - (time.monotonic() - started)
            if signals.stop.wait(min(args.every, max(0.0, left))):
                interrupted = signals.signum
                break
            snap = report.snapshot(stack.prometheus, args.rate_interval)
            report.raise_peaks(peaks, snap.alerts)
            print_snapshot(snap, time.monotonic() - started, traffic)
            report.write_summary(args.out, snap, peaks, extra(args, traffic, started))
            if time.monotonic() - started >= args.duration:
                break
        # While the traffic still flows, so the page shows the run as it was. A failure here
        # still leaves the report to write.
        try:
            shots = screenshots(dashboard.url, args.out, list(stack.pods))
        except Exception as exc:  # a browser fails in many ways; none should cost the report
            shots = []
            print(f"zai-proxy demo: no screenshot of the dashboard: {exc}\n"
                  f"  its log: {dashboard.log_text()[-1500:]}", flush=True)
        traffic.stop(timeout=3)
        end = time.time()
        snap = report.snapshot(stack.prometheus, args.rate_interval, end)
        report.raise_peaks(peaks, snap.alerts)
        info = extra(args, traffic, started)
        report.write_summary(args.out, snap, peaks, info)
        marks = {f"canary fault: {args.fault}": started_wall + args.fault_after} \
            if args.fault != "none" else {}
        images = report.plot_panels(stack.prometheus, args.out, started_wall, end,
                                    args.rate_interval, marks)
        path = report.write_report(args.out, snap, peaks, images, info)
        print(f"\nzai-proxy demo: wrote {_shown(args.out / 'summary.json')}, {_shown(path)}, "
              f"{len(images)} panel PNGs and the dashboard's page: "
              + ", ".join(_shown(p) for p in shots), flush=True)
    except KeyboardInterrupt:
        interrupted = signals.signum or signal.SIGINT
        print("\nzai-proxy demo: interrupted", flush=True)
    finally:
        signals.cleaning = True
        if traffic is not None:
            traffic.stop(timeout=3)
        if dashboard is not None:
            dashboard.stop()
        stack.stop()
        if args.keep_workdir:
            print(f"zai-proxy demo: logs and data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        print("zai-proxy demo: stopped everything it started", flush=True)
    return 128 + interrupted if interrupted else 0  # 130 after Ctrl-C, 143 after SIGTERM


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    signals = Signals()
    signals.install()
    return run(args, signals)


if __name__ == "__main__":
    sys.exit(main())
