"""`make reliability`: the whole fault and load suite, one table, non-zero exit on any mismatch.

    python -m tools.reliability                      # everything, full size (about 14 min)
    python -m tools.reliability --fast               # the size `make test` runs (~2 min)
    python -m tools.reliability --only client,load   # some groups
    python -m tools.reliability --soak-seconds 120

Writes the table and the rows (with the measured figures) to out/reliability/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from . import (client_faults, rolling, shared_state, slow_clients, soak, starvation, table,
               upstream)
from .harness import Stack

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ("upstream", "client", "starvation", "load", "restart", "shared-state")


def plan(fast: bool, soak_seconds: float | None) -> dict:
    """What each group runs with, at full size or at the size of the fast subset."""
    if fast:
        return {
            "matrices": [upstream.MatrixSettings(full=False, burst=2, reps=2)],
            "slow_seconds": 7.0, "soak_seconds": soak_seconds or 20.0, "restart_workers": 2,
            "redis_phase": 5.0, "starvation_seconds": 4.0,
        }
    return {
        "matrices": [upstream.MatrixSettings(full=True, burst=8, reps=3, counting=counting)
                     for counting in (False, True)],
        "slow_seconds": 30.0, "soak_seconds": soak_seconds or 600.0, "restart_workers": 3,
        "redis_phase": 15.0, "starvation_seconds": 20.0,
    }


def run_group(group: str, stack: Stack, settings: dict) -> list[table.Row]:
    if group == "upstream":
        return [r for matrix in settings["matrices"] for r in upstream.run(stack, matrix)]
    if group == "client":
        return client_faults.run(stack) + slow_clients.run(stack, settings["slow_seconds"])
    if group == "starvation":
        return starvation.run(stack, settings["starvation_seconds"])
    if group == "load":
        return soak.run(stack, settings["soak_seconds"])
    if group == "restart":
        return rolling.run(stack, settings["restart_workers"])
    return shared_state.run(stack, settings["redis_phase"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reliability",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="the size make test runs")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated groups among {', '.join(GROUPS)}")
    parser.add_argument("--soak-seconds", type=float, default=None)
    parser.add_argument("--out", default=str(ROOT / "out" / "reliability"))
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}")
    settings = plan(args.fast, args.soak_seconds)

    rows: list[table.Row] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zai-proxy-reliability-") as directory:
        for group in groups:
            print(f"== {group} …", file=sys.stderr, flush=True)
            group_started = time.monotonic()
            # One stack per group: a group's proxies and upstream records never meet another's.
            with Stack(Path(directory) / group) as stack:
                rows += run_group(group, stack, settings)
            print(f"   {group} done in {time.monotonic() - group_started:.0f} s",
                  file=sys.stderr, flush=True)
    text = table.render(rows)
    print(text)
    print(f"({time.monotonic() - started:.0f} s)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(text + "\n")
    (out / "rows.json").write_text(table.to_json(rows) + "\n")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
