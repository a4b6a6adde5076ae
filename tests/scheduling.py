"""How a parallel run (pytest -n 4 --dist loadscope, the Makefile's) hands tests to workers.

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
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling


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
        self._assign_work_unit(node)
