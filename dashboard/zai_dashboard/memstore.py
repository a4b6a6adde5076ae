"""Rows kept in memory: the whole store when DASHBOARD_DB_PATH is `:memory:`, and the rows that
could not be written while the disk is full (they go to the file once it takes writes again).

Same rows as the database's `raw` and `rollup` tables, already decoded.
"""

from __future__ import annotations

import bisect


class Table:
    def __init__(self):
        self._times: list[int] = []
        self._rows: dict[int, dict[str, tuple]] = {}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def put(self, t: int, variant: str, row: tuple) -> None:
        if t not in self._rows:
            bisect.insort(self._times, t)
            self._rows[t] = {}
        self._rows[t][variant] = row

    def between(self, start: float, end: float, variants=None) -> list[tuple]:
        """[(t, variant, *row)] with start <= t < end, by time."""
        lo = bisect.bisect_left(self._times, start)
        hi = bisect.bisect_left(self._times, end)
        out = []
        for t in self._times[lo:hi]:
            for variant, row in self._rows[t].items():
                if variants is None or variant in variants:
                    out.append((t, variant, *row))
        return out

    def drop_before(self, t: float) -> None:
        cut = bisect.bisect_left(self._times, t)
        for old in self._times[:cut]:
            del self._rows[old]
        del self._times[:cut]

    def items(self) -> list[tuple]:
        return self.between(float("-inf"), float("inf"))

    def clear(self) -> None:
        self._times.clear()
        self._rows.clear()


class MemoryRows:
    def __init__(self):
        self.raw = Table()        # row: (state, fig list, sample dict)
        self.rollup = Table()     # row: (fig list, sample dict)

    def __bool__(self) -> bool:
        return bool(self.raw._times or self.rollup._times)

    def clear(self) -> None:
        self.raw.clear()
        self.rollup.clear()
