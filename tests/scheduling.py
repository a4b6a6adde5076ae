"""How a parallel run (pytest -n 6 --dist loadscope, the Makefile's) hands tests to workers.

xdist's loadscope hands out a module's (or a class's) tests as one unit, in collection order,
where conftest.py puts the units marked `slow` first. Two of its habits cost this suite the
most time, since a few slow units (the reliability groups, the alert runs) are most of it:
- At the start it gives every worker two units when the first has two tests or fewer. A slow
  class is often one or two tests (its fixture does the work), so two slow units ended up one
  behind the other on one worker, 60 + 26 s, while the other workers ran out of work.
- Later, it gives a worker its next unit as soon as two of its tests are left, which again
  queues a slow unit behind a slow test.

So here a worker gets its next unit only when it holds its last test (it needs one more to run
it: the worker must know the next test to tear its fixtures down), and the second unit a
worker needs at the start comes from the end of the queue, where the quick units are.

And the quick units that drive the official SDKs go, where the choice is free, to workers that
have already imported them: importing `openai` and `anthropic` costs a process about 4 s of CPU
(thousands of pydantic models), and loadscope alone had every worker pay it. The slow units
keep their order: a slow unit at the head of the queue goes to whichever worker asks first.
Which units drive the SDKs, and which are slow, is read from their files' text, since the
master, which schedules, never imports the tests: a file that imports the SDKs (directly, or
through tests.raw_proxy or the demo's traffic) drives them, one with `pytest.mark.slow` is slow.
A wrong guess costs time, never a test.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

SDK_IMPORT = re.compile(r"^\s*(?:from|import)\s+(?:openai|anthropic|tools\.sdks|tests\.raw_proxy|"
                        r"tools\.demo\.traffic)\b", re.MULTILINE)


@functools.cache
def _text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def drives_sdks(scope: str) -> bool:
    return SDK_IMPORT.search(_text(scope.split("::")[0])) is not None


def is_slow(scope: str) -> bool:
    return "pytest.mark.slow" in _text(scope.split("::")[0])


class SlowUnitsApart(LoadScopeScheduling):
    _starting = False

    def schedule(self) -> None:
        self._starting = self.collection is None
        try:
            super().schedule()
        finally:
            self._starting = False

    def _reschedule(self, node) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        if self._starting:      # a second unit at the start: the quick end of the queue
            self.workqueue.move_to_end(next(reversed(self.workqueue)), last=False)
        self._prefer_same_sdks(node)
        self._assign_work_unit(node)

    def _prefer_same_sdks(self, node) -> None:
        """Move the first quick unit whose SDK use matches the worker's to the head of the
        queue (a worker has the SDKs once it has been given a unit that drives them)."""
        head = next(iter(self.workqueue))
        if is_slow(head):
            return
        has_sdks = any(drives_sdks(scope) for scope in self.assigned_work.get(node, {}))
        for scope in self.workqueue:
            if drives_sdks(scope) == has_sdks:
                self.workqueue.move_to_end(scope, last=False)
                return
