"""The fast part of the fault and load suite (`make reliability` runs the whole of it).

Same runners and expectations as the full run, at a smaller size: every upstream fault on both
families, streaming and not (two bursts of two requests), every client fault, slow clients for
7 s, a 20 s soak, a rolling restart of two workers, a 5 s Redis outage.

Each group runs once, in its own class; its rows are judged by two tests:
  Test<Group>::test_as_expected     rows without a known finding: any mismatch is a regression
  Test<Group>::test_findings_fixed  rows that demonstrate a known proxy defect (F1…, described
                                    with the proposed fix in docs/reliability.md): they fail until
                                    it is fixed, and then pass like any other row
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


pytestmark = pytest.mark.slow


@pytest.fixture(scope="class")
def rows(request, tmp_path_factory):
    """The rows of the class's group, run once for its tests. One class per group: a parallel run
    (pytest -n, --dist loadscope) gives each class one worker, so groups run side by side and
    none runs twice."""
    group = request.cls.group
    with Stack(tmp_path_factory.mktemp(group)) as stack:
        return run_group(group, stack, FAST)


class Group:
    group = ""

    def test_as_expected(self, rows):
        assert len(rows) >= MINIMUM_ROWS[self.group]
        plain = [r for r in rows if not r.finding]
        assert all(r.ok for r in plain), "\n" + describe_failures(plain)

    def test_findings_fixed(self, rows):
        known = [r for r in rows if r.finding]
        assert all(r.ok for r in known), "\n" + describe_failures(known)


class TestUpstream(Group):
    group = "upstream"


class TestClient(Group):
    group = "client"


class TestLoad(Group):
    group = "load"

    def test_the_load_really_ran(self, rows):
        soak, _, _ = rows
        assert soak.figures["requests"] > 300


class TestRestart(Group):
    group = "restart"

    def test_the_restarts_really_met_streams(self, rows):
        [restart] = rows
        assert restart.figures["streams_completed"] > 0
        # Streams were in flight at every SIGTERM: a lost one would have shown.
        assert min(restart.figures["in_flight_at_signal"]) > 0


class TestSharedState(Group):
    group = "shared-state"


def test_every_judged_group_has_its_class():
    assert sorted(cls.group for cls in Group.__subclasses__()) == sorted(JUDGED)
