"""Where zai-proxy's CPU goes under load: py-spy samples the worker while the benchmark's load
runs, and the stacks are folded into layers (server, framework, HTTP client, metrics, ...).

    python -m bench.profile [--contestant production|canary] [--load nonstreaming|streaming]
                            [--seconds 10] [--out bench/results]

Needs py-spy (`.venv-bench/bin/pip install -r bench/requirements-profile.txt`) and ptrace rights
(root, or CAP_SYS_PTRACE). Samples are taken with --gil: only the thread holding the GIL is
sampled, which is where a one-process Python server spends the CPU that bounds its throughput.
Writes profile-<contestant>-<load>.md (a table per layer and the top functions) and the raw
folded stacks (.txt, for flame-graph tools) beside it.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from . import contestants as C
from .load import chat_body, run_streams, run_wrk
from .procs import ROOT, raise_fd_limit
from .scenarios import PROMPT, Plan

PY_SPY = ROOT / ".venv-bench" / "bin" / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# First match wins, on the file of the innermost frame (self time).
LAYERS = (
    ("zai_proxy own code", ("zai_proxy/", "/image/app.py")),
    ("metrics (prometheus_client, multiprocess files)", ("prometheus_client/",
                                                         "prometheus_flask_exporter/")),
    ("HTTP client (requests, urllib3, http.client)", ("requests/", "urllib3/", "http/client.py",
                                                      "email/", "http/cookiejar.py")),
    ("WSGI framework (Flask, Werkzeug)", ("flask/", "werkzeug/", "itsdangerous/", "jinja2/")),
    ("server (gunicorn gthread, HTTP parsing)", ("gunicorn/",)),
    ("logging + JSON", ("logging/", "json/")),
    ("tokens (tiktoken)", ("tiktoken",)),
    ("threads, locks, queues", ("threading.py", "concurrent/", "queue.py")),
    ("sockets, selectors", ("socket.py", "selectors.py", "ssl.py")),
)


def layer_of(path: str) -> str:
    for name, needles in LAYERS:
        if any(n in path for n in needles):
            return name
    return "other (stdlib, interpreter)"


def parse_folded(text: str):
    """[(frames innermost last, count)] from py-spy's raw (folded) output."""
    stacks = []
    for line in text.splitlines():
        line = line.strip()
        if not line or " " not in line:
            continue
        stack, count = line.rsplit(" ", 1)
        frames = []
        for part in stack.split(";"):
            match = _FRAME.match(part.strip())
            if match:
                frames.append((match["func"], match["file"]))
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def fold(stacks) -> dict:
    total = sum(count for _, count in stacks) or 1
    by_layer = collections.Counter()
    self_fn = collections.Counter()
    incl_fn = collections.Counter()
    for frames, count in stacks:
        func, path = frames[-1]
        by_layer[layer_of(path)] += count
        self_fn[f"{func} ({_short(path)})"] += count
        for name in {f"{f} ({_short(p)})" for f, p in frames}:
            incl_fn[name] += count
    return {"samples": total,
            "layers": [(name, round(100 * n / total, 1)) for name, n in by_layer.most_common()],
            "self": [(name, round(100 * n / total, 1)) for name, n in self_fn.most_common(25)],
            "inclusive": [(name, round(100 * n / total, 1)) for name, n in
                          incl_fn.most_common(40)]}


def _short(path: str) -> str:
    for marker in ("site-packages/", "/image/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1].lstrip("/")
    return path


def render(contestant: str, load: str, folded: dict, note: str) -> str:
    lines = [f"# Profile: zai-proxy {contestant}, {load} load", "", note, "",
             f"{folded['samples']:,} samples of the thread holding the GIL (py-spy --gil).", "",
             "## By layer (self time of the innermost frame)", "", "| layer | % |", "|---|---|"]
    lines += [f"| {name} | {pct} |" for name, pct in folded["layers"]]
    lines += ["", "## Top functions, inclusive (any frame on the stack)", "",
              "| function | % |", "|---|---|"]
    lines += [f"| `{name}` | {pct} |" for name, pct in folded["inclusive"]]
    lines += ["", "## Top functions, self", "", "| function | % |", "|---|---|"]
    lines += [f"| `{name}` | {pct} |" for name, pct in folded["self"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--contestant", default="production", choices=("production", "canary"))
    parser.add_argument("--load", default="nonstreaming", choices=("nonstreaming", "streaming"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        sys.exit(f"{PY_SPY} missing: .venv-bench/bin/pip install -r bench/requirements-profile.txt")
    raise_fd_limit()
    plan = Plan()
    layout = C.Layout.detect()
    work = Path(tempfile.mkdtemp(prefix="zai-profile-"))
    fake, origin = C.start_fake(work, layout)
    running = C.start(args.contestant, origin, work, layout, plan.max_workers)
    try:
        worker = running.tree.processes()[-1].pid    # gunicorn's (only) worker
        env = layout.environment
        run_wrk(running.url, running.headers, chat_body(plan.ns_model, PROMPT, False), 16, 1, env)
        if args.load == "nonstreaming":
            def drive():
                return run_wrk(running.url, running.headers,
                               chat_body(plan.ns_model, PROMPT, False), 16, args.seconds + 2,
                               env)
            note = (f"wrk, 16 connections, `{plan.ns_model}`, {args.seconds} s sampled at "
                    "200 Hz.")
        else:
            per_client = max(1, args.seconds // 2)

            def drive():
                return run_streams(running.url, running.headers, plan.st_model, 256,
                                   per_client, plan.st_chunks, env, stagger_s=1.0)
            note = (f"256 concurrent streams, `{plan.st_model}`, {args.seconds} s sampled at "
                    "200 Hz.")
        result = {}
        thread = threading.Thread(target=lambda: result.update(drive()))
        thread.start()
        raw = work / "profile.txt"
        subprocess.run([str(PY_SPY), "record", "--gil", "--nonblocking", "-r", "200",
                        "-d", str(args.seconds), "-f", "raw", "-o", str(raw), "-p",
                        str(worker)], check=True, capture_output=True)
        thread.join()
        folded = fold(parse_folded(raw.read_text()))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = f"profile-{args.contestant}-{args.load}"
        throughput = result.get("throughput_rps")
        if throughput:
            note += f" Throughput during the profile: {throughput:,.0f} req/s."
        (out / f"{name}.md").write_text(render(args.contestant, args.load, folded, note))
        (out / f"{name}.txt").write_text(raw.read_text())
        print(out / f"{name}.md")
    finally:
        running.tree.stop()
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
