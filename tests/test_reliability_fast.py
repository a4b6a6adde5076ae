"""The fast part of the fault and load suite (`make reliability` runs the whole of it).

Same runners and expectations as the full run, at a smaller size: every upstream fault on both
families, streaming and not (two bursts of two requests), every client fault, slow clients for
7 s, a 20 s soak, a rolling restart of two workers, a 5 s Redis outage.

Each group runs once per module; its rows are judged by two tests:
  test_as_expected[group]      rows without a known finding: any mismatch is a regression
  test_findings_fixed[group]   rows that demonstrate a known proxy defect (F1…, described with
                               the proposed fix in docs/reliability.md): they fail until it is
                               fixed, and then pass like any other row
"""

from __future__ import annotations

import pytest

from tools.reliability.__main__ import GROUPS, plan, run_group
from tools.reliability.harness import Stack
from tools.reliability.table import describe_failures

FAST = plan(fast=True, soak_seconds=None)
# The starvation group's attacks run in tests/test_starvation.py, against one proxy, with checks
# that do not depend on how fast this machine is; here they would only repeat them.
JUDGED = tuple(group for group in GROUPS if group != "starvation")
# Rows each group must produce at least (every fault × family × streaming, every client case…)
MINIMUM_ROWS = {"upstream": 100, "client": 40, "load": 3, "restart": 1, "shared-state": 5}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cache = {}

    def rows_of(group: str):
        if group not in cache:
            with Stack(tmp_path_factory.mktemp(group)) as stack:
                cache[group] = run_group(group, stack, FAST)
        return cache[group]

    return rows_of


@pytest.mark.parametrize("group", JUDGED)
def test_as_expected(results, group):
    rows = results(group)
    assert len(rows) >= MINIMUM_ROWS[group]
    plain = [r for r in rows if not r.finding]
    assert all(r.ok for r in plain), "\n" + describe_failures(plain)


@pytest.mark.parametrize("group", JUDGED)
def test_findings_fixed(results, group):
    known = [r for r in results(group) if r.finding]
    assert all(r.ok for r in known), "\n" + describe_failures(known)


def test_the_load_really_ran(results):
    soak, _, _ = results("load")
    assert soak.figures["requests"] > 300
    [restart] = results("restart")
    assert restart.figures["streams_completed"] > 0
    # Streams were in flight at every SIGTERM: a lost one would have shown.
    assert min(restart.figures["in_flight_at_signal"]) > 0
