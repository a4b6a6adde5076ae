"""What one very long SSE event costs the stream relay: CPU time per event size, and the ratios.

    python -m bench.sse_event_cost [--baseline REV] [--reads 4096] [--reps 5]

An upstream may send one event of megabytes (a huge tool-call argument, or a misbehaving server),
in small reads (a slow or trickling connection). The relay regroups reads into whole events
(`streaming.WholeEvents`, token counting off) or parses them for the accountant (`sse.SSEParser`,
counting on). Each is fed one event of 256 KiB, 1 MiB and 4 MiB, `--reads` bytes at a time; CPU
time is the median of `--reps` runs. A cost linear in the bytes relayed makes each ratio ~4 (each
size is 4 × the previous one); a quadratic one ~16. Events above 1 MiB are released in pieces
(`sse.DEFAULT_MAX_EVENT_BYTES`), so the 256 KiB → 1 MiB ratio is the one a quadratic search
cannot hide from. With --baseline, the same for git revision REV (extracted with git archive),
side by side in one run.

Budget: every ratio of this tree ≤ 6 (exit 1 otherwise). Results: bench/results/sse_event_cost.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (256 << 10, 1 << 20, 4 << 20)
BUDGET = 6.0

# Runs inside a fresh interpreter with the tree's image/ first on sys.path.
_MEASURE = r"""
import json, statistics, sys, time
from zai_proxy.sse import SSEParser
from zai_proxy.streaming import WholeEvents
sizes, reads, reps = json.loads(sys.argv[1])
def run(make, size):
    event = b"data: " + b"x" * size + b"\n\n"
    pieces = [event[i:i + reads] for i in range(0, len(event), reads)]
    times = []
    for _ in range(reps):
        relay = make()
        started = time.process_time()
        for piece in pieces:
            relay.feed(piece)
        times.append(time.process_time() - started)
    return statistics.median(times)
out = {}
for name, make in (("WholeEvents", WholeEvents), ("SSEParser", SSEParser)):
    out[name] = {str(size): run(make, size) for size in sizes}
print(json.dumps(out))
"""


def measure(tree: Path, reads: int, reps: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps([SIZES, reads, reps])],
        env={"PYTHONPATH": str(tree / "image"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(result.stdout)


def ratios(times: dict) -> dict:
    values = [times[str(size)] for size in SIZES]
    return {f"{SIZES[i] >> 10}KiB→{SIZES[i + 1] >> 10}KiB": round(values[i + 1] / values[i], 2)
            for i in range(len(SIZES) - 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sse_event_cost",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="a git revision to measure side by side")
    parser.add_argument("--reads", type=int, default=4096, help="bytes per upstream read")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sse_event_cost.json"))
    args = parser.parse_args(argv)
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory(prefix="sse-cost-") as scratch:
        if args.baseline:
            base = Path(scratch) / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline, "image"], cwd=ROOT,
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            trees[f"baseline {args.baseline}"] = base
        results = {name: measure(tree, args.reads, args.reps) for name, tree in trees.items()}
    report = {"reads": args.reads, "reps": args.reps, "sizes": SIZES, "budget": BUDGET,
              "trees": {}}
    over = []
    print(f"one SSE event fed {args.reads} B at a time; CPU ms (median of {args.reps})")
    for name, by_class in results.items():
        report["trees"][name] = {}
        for cls, times in by_class.items():
            cls_ratios = ratios(times)
            report["trees"][name][cls] = {"cpu_seconds": times, "ratios": cls_ratios}
            cells = "  ".join(f"{size >> 10:>5} KiB {times[str(size)] * 1000:9.1f}"
                              for size in SIZES)
            print(f"  {name:<22} {cls:<12} {cells}   ratios {cls_ratios}")
            if name == "this tree":
                over += [f"{cls} {step} = {value}" for step, value in cls_ratios.items()
                         if value > BUDGET]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if over:
        print(f"over budget (ratio ≤ {BUDGET}): {', '.join(over)}")
        return 1
    print(f"within budget: every ratio ≤ {BUDGET} (linear ≈ 4, quadratic ≈ 16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
