"""The dashboard service's budgets, measured (`make bench` runs it; alone:
`python -m bench.dashboard_service [--quick]`).

Everything runs the real command (`gunicorn -c dashboard/gunicorn.conf.py …`) on loopback, in
front of three real proxy pods under gunicorn (production x2 with two worker processes each,
canary x1 counting tokens) that serve SDK traffic from tools/demo/traffic.py throughout:

1. Collector CPU with 3 pods, at the default 5 s interval: the dashboard's processes' CPU
   seconds over a wall-clock window, as a share of one core. Budget 5 %.
2. SSE fan-out to 50 clients at a 1 s interval: for every tick event each client receives, the
   time from the moment the service sent it (`published_at`) to its arrival. Budget 250 ms p99.
   Also given: from the tick's own time (its id: before the pods are scraped) to its arrival.
3. /api/series over 24 h: a database of 24 h at 5 s (and 6 more days of minutes, for 7d) built
   through the service's own Storage from ticks it stored in part 1 (real proxy samples); the
   answer's time to a client at full resolution (`range=24h&step=5`, 17,280 buckets x 2
   variants; budget 1.5 s) and at the default resolution (`range=24h`, 1-minute rollups; budget
   300 ms); `range=7d` for information.

Writes dashboard_service.json (raw figures) and dashboard_service.md (the table) to --out.
Wall-clock figures depend on the machine's load, which the report states.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python -m bench.dashboard_service"
CPU_BUDGET = 0.05
FANOUT_BUDGET_S = 0.250
FULL_BUDGET_S = 1.5
DEFAULT_BUDGET_S = 0.300
DAY = 86400


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


class Pods:
    """Three proxy pods under gunicorn with SDK traffic, like the chart's two releases."""

    def __init__(self, workdir: Path):
        from types import SimpleNamespace

        from tools.demo.traffic import Traffic
        from tools.fake_zai import FakeZai
        from tools.proxy_process import ProxyProcess

        self.fake = FakeZai().__enter__()
        common = {"RATE_LIMIT_ENABLED": "true", "LOG_LEVEL": "warning"}
        self.pods = {
            "production": [ProxyProcess(workdir / "p1", self.fake.url, DEPLOYMENT_VARIANT="production",
                                        WEB_CONCURRENCY="2", MAX_WORKERS="20", **common),
                           ProxyProcess(workdir / "p2", self.fake.url, DEPLOYMENT_VARIANT="production",
                                        WEB_CONCURRENCY="2", MAX_WORKERS="20", **common)],
            "canary": [ProxyProcess(workdir / "c1", self.fake.url, DEPLOYMENT_VARIANT="canary",
                                    TOKEN_COUNTING_ENABLED="true", **common)],
        }
        for pods in self.pods.values():
            for pod in pods:
                pod.start(timeout=60)
        self.traffic = Traffic({v: [SimpleNamespace(url=p.url) for p in pods]
                                for v, pods in self.pods.items()},
                               rates={"production": 6.0, "canary": 4.0}, workers=4,
                               timeout=30).start()

    @property
    def targets(self) -> str:
        return ";".join(f"{v}=" + ",".join(f"{p.url}/metrics" for p in pods)
                        for v, pods in self.pods.items())

    def exposition_bytes(self) -> dict[str, int]:
        return {p.url: len(requests.get(p.url + "/metrics", timeout=5).content)
                for pods in self.pods.values() for p in pods}

    def stop(self) -> None:
        self.traffic.stop(timeout=10)
        for pods in self.pods.values():
            for pod in pods:
                pod.stop()
        self.fake.__exit__(None, None, None)


def collector_cpu(workdir: Path, pods, seconds: float, name: str = "collector"
                  ) -> tuple[dict, Path]:
    from tools.dashboard_process import DashboardProcess

    service = DashboardProcess(workdir / name, pods.targets,
                               DASHBOARD_SCRAPE_INTERVAL="5s").start()
    try:
        master = psutil.Process(service.proc.pid)
        time.sleep(6)                      # past the first ticks and the page cache warm-up
        cpu0, t0 = _cpu_seconds(master), time.monotonic()
        load0 = os.getloadavg()[0]
        time.sleep(seconds)
        cpu1, t1 = _cpu_seconds(master), time.monotonic()
        metrics = service.get("/metrics").text
        ticks = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
                 if line.startswith("zai_dashboard_tick_duration_seconds_")
                 and "_bucket" not in line}
        status = service.get("/api/status").json()
    finally:
        service.stop()
    share = (cpu1 - cpu0) / (t1 - t0)
    return {
        "interval_s": 5, "window_s": round(t1 - t0, 1), "cpu_s": round(cpu1 - cpu0, 3),
        "cpu_share_of_one_core": round(share, 4), "budget": CPU_BUDGET,
        "met": share <= CPU_BUDGET,
        "pods": {v: s["pods_total"] for v, s in status["variants"].items()},
        "exposition_bytes": pods.exposition_bytes(),
        "tick_seconds_mean": round(ticks["zai_dashboard_tick_duration_seconds_sum"]
                                   / ticks["zai_dashboard_tick_duration_seconds_count"], 4),
        "loadavg_1m": round(max(load0, os.getloadavg()[0]), 2),
    }, Path(service.env["DASHBOARD_DB_PATH"])


class BusyPods:
    """Three /metrics endpoints with the proxy's own families (zai_proxy.metrics) holding the
    label sets of a long-lived busy pod (the chat and messages routes with eight statuses, 64
    fairness buckets, ten models, Z.AI errors by class and code): a few hundred kB each, with
    counters moving between scrapes."""

    def __init__(self, count: int = 3):
        import random
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from prometheus_client import CollectorRegistry, generate_latest
        from zai_proxy.metrics import ZAI_CODES, Metrics
        from zai_proxy.pricing import DIRECTIONS
        from zai_proxy.routes import KNOWN_PATHS

        self.servers = []
        paths = [p for p in sorted(KNOWN_PATHS) if p.endswith(("/chat/completions", "/messages"))]
        models = ("glm-4.5", "glm-4.5-air", "glm-4.5-flash", "glm-4.5v", "glm-4.6", "glm-4.7",
                  "glm-4.7-flash", "glm-5", "glm-5-turbo", "glm-5.1")
        for n in range(count):
            registry = CollectorRegistry()
            metrics = Metrics("production", registry, models)
            rng = random.Random(n)
            lock = threading.Lock()

            def traffic(metrics=metrics, rng=rng, rounds=1):
                for _ in range(rounds):
                    path = rng.choice(paths)
                    status = rng.choice(("200", "200", "200", "400", "429", "500", "503", "504"))
                    metrics.count_request("POST", path, status, rng.random() * 5, 2000)
                    metrics.request_size.labels("POST", path, "production").observe(1500)
                    metrics.ttfb.labels(path, "production").observe(rng.random())
                    metrics.admission_wait(rng.randrange(64), rng.random() / 10)
                    metrics.add_tokens(rng.choice(DIRECTIONS), rng.choice(models), "peak",
                                       rng.randrange(1, 500), 0.001, rng.random() < 0.1)
                    metrics.zai_error(rng.choice(("concurrency", "frequency", "quota")),
                                      rng.choice(ZAI_CODES))
                    metrics.retry(rng.choice(("network_error", "frequency", "overloaded")))
                    metrics.upstream_error(rng.choice(("429", "500", "upstream_timeout")))

            traffic(rounds=5000)   # every label set exists, as on a pod that has run for days
            metrics.max_workers.set(20)

            class Handler(BaseHTTPRequestHandler):
                def do_GET(self, registry=registry, traffic=traffic, lock=lock):
                    with lock:
                        traffic(rounds=20)
                        body = generate_latest(registry)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass

            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    @property
    def targets(self) -> str:
        urls = [f"http://127.0.0.1:{s.server_address[1]}/metrics" for s in self.servers]
        return f"production={','.join(urls[:-1])};canary={urls[-1]}"

    def exposition_bytes(self) -> dict[str, int]:
        urls = [f"http://127.0.0.1:{s.server_address[1]}/metrics" for s in self.servers]
        return {url: len(requests.get(url, timeout=10).content) for url in urls}

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def parsers(text: str, reps: int = 5) -> dict:
    """CPU to read one exposition: the collector's parser beside prometheus_client's."""
    from prometheus_client.parser import text_string_to_metric_families
    from zai_dashboard import exposition

    def cpu(read) -> float:
        started = time.process_time()
        for _ in range(reps):
            read()
        return (time.process_time() - started) / reps

    ours = cpu(lambda: exposition.parse(text))
    theirs = cpu(lambda: [s for f in text_string_to_metric_families(text) for s in f.samples])
    return {"bytes": len(text), "dashboard_ms": round(ours * 1000, 2),
            "prometheus_client_ms": round(theirs * 1000, 2),
            "ratio": round(theirs / ours, 1) if ours else None}


def fanout(workdir: Path, pods: Pods, clients: int, seconds: float) -> dict:
    from tools.dashboard_process import DashboardProcess, EventStream

    service = DashboardProcess(workdir / "fanout", pods.targets, DASHBOARD_SCRAPE_INTERVAL="1s",
                               DASHBOARD_MAX_CLIENTS=str(clients + 10)).start()
    arrivals: list[list[tuple[int, float, float]]] = [[] for _ in range(clients)]
    streams = [EventStream(service.url + "/api/events", timeout=30) for _ in range(clients)]
    stop = threading.Event()

    def read(index: int) -> None:
        try:
            for event in streams[index].events():
                if event["event"] == "tick" and "published_at" in event["data"]:
                    arrivals[index].append((int(event["id"]), event["data"]["published_at"],
                                            time.time()))
                if stop.is_set():
                    return
        except (OSError, ValueError, AttributeError):
            return

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(clients)]
    load0 = os.getloadavg()[0]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    service.stop()
    for thread in threads:
        thread.join(5)
    for stream in streams:
        stream.close()
    # Delivery: from the moment the service sent the tick to its arrival at a client.
    delivery = [arrived - sent for per_client in arrivals for _, sent, arrived in per_client]
    # End to end: from the tick's own time (before the pods are scraped) to its arrival.
    end_to_end = [arrived - tick for per_client in arrivals for tick, _, arrived in per_client]
    spreads = []
    by_tick: dict[int, list[float]] = {}
    for per_client in arrivals:
        for tick, _, arrived in per_client:
            by_tick.setdefault(tick, []).append(arrived)
    for times in by_tick.values():
        if len(times) == clients:
            spreads.append(max(times) - min(times))
    p99 = _quantile(delivery, 0.99)
    return {
        "clients": clients, "interval_s": 1, "ticks": len(by_tick), "deliveries": len(delivery),
        "complete_ticks": len(spreads),
        "delivery_p50_s": round(_quantile(delivery, 0.5), 4), "delivery_p99_s": round(p99, 4),
        "delivery_max_s": round(max(delivery), 4),
        "end_to_end_p50_s": round(_quantile(end_to_end, 0.5), 4),
        "end_to_end_p99_s": round(_quantile(end_to_end, 0.99), 4),
        "spread_p99_s": round(_quantile(spreads, 0.99), 4) if spreads else None,
        "budget_p99_s": FANOUT_BUDGET_S, "met": p99 <= FANOUT_BUDGET_S,
        "loadavg_1m": round(max(load0, os.getloadavg()[0]), 2),
    }


def captured_ticks(db: Path) -> list[list[tuple]]:
    """The ticks part 1 stored with counter deltas in both variants (real proxy samples)."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT t, variant, state, fig, sample FROM raw ORDER BY t").fetchall()
    conn.close()
    ticks: dict[int, list[tuple]] = {}
    for t, variant, state, fig, sample in rows:
        ticks.setdefault(t, []).append((variant, state, json.loads(fig), json.loads(sample)))
    full = [sorted(rows) for rows in ticks.values()
            if len(rows) == 2 and all(r[3].get("dt") and r[3].get("req") for r in rows)]
    if len(full) < 2:
        raise RuntimeError(f"only {len(full)} ticks with traffic in both variants were stored")
    return full


def build_week(path: Path, ticks: list[list[tuple]], end: int) -> float:
    """6 days of one tick a minute, then 24 h at 5 s, through the service's Storage."""
    from zai_dashboard.figures import as_row, figures, merge
    from zai_dashboard.storage import Storage

    started = time.monotonic()
    storage = Storage(str(path), raw_retention=DAY, rollup_retention=7 * DAY).open(now=end)
    minute = []
    for variant_index in range(2):
        merged = merge(tick[variant_index][3] for tick in (ticks * 12)[:12])
        merged["dt"] = 60
        for key in [k for k in merged if k.startswith("n:")]:
            merged[key] = 1
            gauge = "g:" + key[2:]
            merged[gauge] = merged.get(gauge, 0) / 12
        variant, state = ticks[0][variant_index][:2]
        minute.append((variant, state, as_row(figures(merged)), merged))
    day_start = end - DAY
    for t in range(end - 7 * DAY, day_start, 60):
        storage.write_tick(t, minute)
    for n, t in enumerate(range(day_start, end, 5)):
        storage.write_tick(t, ticks[n % len(ticks)])
    storage.close()
    return time.monotonic() - started


def series_times(workdir: Path, db: Path, targets: str, reps: int) -> dict:
    from tools.dashboard_process import DashboardProcess

    service = DashboardProcess(workdir / "series", targets, DASHBOARD_SCRAPE_INTERVAL="5s",
                               DASHBOARD_DB_PATH=str(db)).start()
    out = {}
    try:
        for name, query, budget, count in (
                ("full_24h", "range=24h&step=5", FULL_BUDGET_S, reps),
                ("default_24h", "range=24h", DEFAULT_BUDGET_S, reps * 2),
                ("default_7d", "range=7d", None, reps),
                ("default_1h", "range=1h", None, reps)):
            seconds, size = [], 0
            service.get(f"/api/series?{query}", timeout=60)          # warm the page cache
            master = psutil.Process(service.proc.pid)
            cpu0 = _cpu_seconds(master)
            for _ in range(count):
                started = time.monotonic()
                response = service.get(f"/api/series?{query}", timeout=60)
                seconds.append(time.monotonic() - started)   # the whole body received
                size = len(response.content)
            cpu = (_cpu_seconds(master) - cpu0) / count
            body = response.json()
            points = sum(v is not None for v in body["variants"]["production"]["requests_per_s"])
            median = statistics.median(seconds)
            out[name] = {"query": query, "step_s": body["step_s"],
                         "buckets": len(body["t"]), "non_null_production": points,
                         "bytes": size, "median_s": round(median, 4),
                         "max_s": round(max(seconds), 4), "runs": count,
                         "server_cpu_s": round(cpu, 4),
                         "budget_s": budget, "met": None if budget is None else median <= budget}
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    finally:
        service.stop()
    return out


def report(result: dict) -> str:
    c, f, s = result["collector"], result["fanout"], result["series"]
    h, p = result["collector_busy_pods"], result["parsing"]

    def ok(item):
        return "met" if item else "**missed**"

    lines = [
        "# Dashboard service: benchmark results",
        "",
        f"`{COMMAND}` (run by `make bench` after the proxy benchmarks), "
        f"{result['meta']['started']}, {result['meta']['cpus']} cores "
        f"({result['meta']['cpu_model']}), commit {result['meta']['commit']}.",
        "The real command under gunicorn on loopback, three real proxy pods under gunicorn with SDK "
        "traffic (production x2, canary x1). Wall-clock figures depend on the machine's load, given "
        "per row (1-minute load average; the machine has "
        f"{result['meta']['cpus']} cores).",
        "",
        "| budget | target | measured | | load |",
        "|---|---|---|---|---|",
        f"| collector CPU, 3 pods, 5 s interval | ≤ 5 % of a core | "
        f"{c['cpu_share_of_one_core'] * 100:.2f} % ({c['cpu_s']} s CPU in {c['window_s']} s; "
        f"{c['tick_seconds_mean'] * 1000:.0f} ms per tick) | {ok(c['met'])} | {c['loadavg_1m']} |",
        f"| collector CPU, 3 busy pods (/metrics of "
        f"{max(h['exposition_bytes'].values()) / 1000:.0f} kB each), 5 s interval | ≤ 5 % of a "
        f"core | {h['cpu_share_of_one_core'] * 100:.2f} % ({h['cpu_s']} s CPU in "
        f"{h['window_s']} s; {h['tick_seconds_mean'] * 1000:.0f} ms per tick) | {ok(h['met'])} | "
        f"{h['loadavg_1m']} |",
        f"| reading one busy pod's /metrics ({p['bytes'] / 1000:.0f} kB), CPU | (none) | "
        f"{p['dashboard_ms']:.1f} ms; prometheus_client's parser {p['prometheus_client_ms']:.0f} "
        f"ms ({p['ratio']}x) | | |",
        f"| SSE tick delivered to {f['clients']} clients (from the service sending it) | ≤ 250 ms "
        f"p99 | p99 {f['delivery_p99_s'] * 1000:.0f} ms (p50 {f['delivery_p50_s'] * 1000:.0f} ms, "
        f"max {f['delivery_max_s'] * 1000:.0f} ms; {f['deliveries']} deliveries of {f['ticks']} "
        f"ticks; from the tick's own time, scrapes included: p50 "
        f"{f['end_to_end_p50_s'] * 1000:.0f} ms, p99 {f['end_to_end_p99_s'] * 1000:.0f} ms) | "
        f"{ok(f['met'])} | {f['loadavg_1m']} |",
        f"| `/api/series?{s['full_24h']['query']}` ({s['full_24h']['buckets']} buckets x 2 "
        f"variants, {s['full_24h']['bytes'] / 1e6:.1f} MB) | ≤ 1.5 s | median "
        f"{s['full_24h']['median_s']:.2f} s (max {s['full_24h']['max_s']:.2f} s; server CPU "
        f"{s['full_24h']['server_cpu_s']:.2f} s per answer) | "
        f"{ok(s['full_24h']['met'])} | {s['loadavg_1m']} |",
        f"| `/api/series?{s['default_24h']['query']}` ({s['default_24h']['buckets']} buckets, "
        f"{s['default_24h']['step_s']} s, {s['default_24h']['bytes'] / 1e3:.0f} kB) | ≤ 300 ms | "
        f"median {s['default_24h']['median_s'] * 1000:.0f} ms (max "
        f"{s['default_24h']['max_s'] * 1000:.0f} ms; server CPU "
        f"{s['default_24h']['server_cpu_s'] * 1000:.0f} ms) | {ok(s['default_24h']['met'])} | "
        f"{s['loadavg_1m']} |",
        f"| `/api/series?{s['default_7d']['query']}` ({s['default_7d']['buckets']} buckets, "
        f"{s['default_7d']['step_s']} s) | (none) | median "
        f"{s['default_7d']['median_s'] * 1000:.0f} ms (server CPU "
        f"{s['default_7d']['server_cpu_s'] * 1000:.0f} ms) | | {s['loadavg_1m']} |",
        f"| `/api/series?{s['default_1h']['query']}` ({s['default_1h']['buckets']} buckets) | "
        f"(none) | median {s['default_1h']['median_s'] * 1000:.0f} ms | | {s['loadavg_1m']} |",
        "",
        "Pods' /metrics sizes: "
        + ", ".join(f"{n / 1000:.0f} kB" for n in c["exposition_bytes"].values())
        + f". The 7-day database ({result['database_mb']:.1f} MB: 24 h of ticks and 7 days of "
        f"1- and 10-minute rollups, two variants) was built through the service's Storage in "
        f"{result['build_s']:.0f} s from {result['captured_ticks']} ticks the collector stored "
        "in part 1.",
        "",
    ]
    missed = [name for name, item in (("collector CPU", c), ("collector CPU (busy pods)", h),
                                      ("SSE fan-out", f),
                                      ("full-resolution series", s["full_24h"]),
                                      ("default-resolution series", s["default_24h"]))
              if not item["met"]]
    if missed:
        lines += [f"Missed: {', '.join(missed)}. See the load column: on a shared machine the "
                  "wall-clock figures include waiting for a core; the server CPU per answer "
                  "is what the service itself spent.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    for path in ("dashboard", "image"):          # zai_dashboard; zai_proxy (its metrics)
        sys.path.insert(0, str(ROOT / path))
    cpu_seconds, fanout_seconds, reps = (20, 10, 2) if args.quick else (60, 30, 5)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        workdir = Path(tmp)
        pods = Pods(workdir)
        try:
            print("collector CPU …", flush=True)
            collector, db = collector_cpu(workdir, pods, cpu_seconds)
            print("collector CPU, busy pods …", flush=True)
            busy = BusyPods()
            try:
                heavy, _ = collector_cpu(workdir, busy, cpu_seconds, "collector-busy")
                url = f"http://127.0.0.1:{busy.servers[0].server_address[1]}/metrics"
                parsing = parsers(requests.get(url, timeout=10).text)
            finally:
                busy.stop()
            print("SSE fan-out …", flush=True)
            fan = fanout(workdir, pods, 50, fanout_seconds)
            print("building 7 days of storage …", flush=True)
            ticks = captured_ticks(db)
            week = workdir / "week" / "dashboard.db"
            week.parent.mkdir()
            end = int(time.time()) // 5 * 5
            build_s = build_week(week, ticks, end)
            size_mb = sum(os.path.getsize(p) for p in week.parent.iterdir()) / 1e6
            print("/api/series …", flush=True)
            series = series_times(workdir, week, pods.targets, reps)
        finally:
            pods.stop()
    import subprocess
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    result = {"meta": {"started": started, "quick": args.quick, "cpus": os.cpu_count(),
                       "cpu_model": cpu_model, "commit": commit},
              "collector": collector, "collector_busy_pods": heavy, "parsing": parsing,
              "fanout": fan,
              "series": series,
              "captured_ticks": len(ticks), "build_s": round(build_s, 1),
              "database_mb": round(size_mb, 1)}
    out = args.out if not args.quick else args.out / "raw" / "quick"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dashboard_service.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "dashboard_service.md").write_text(report(result))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
