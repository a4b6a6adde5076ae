"""One row per case (fault → expected → observed), and the table that `make reliability` prints."""

from __future__ import annotations

import dataclasses
import json
import textwrap


@dataclasses.dataclass
class Row:
    group: str          # upstream, client, load, restart, shared-state
    case: str           # e.g. "reset_mid · anthropic · stream"
    expected: str
    observed: str       # "" until checked; the problems found, or a summary when all is well
    ok: bool
    finding: str = ""   # id of a known proxy finding this row demonstrates (docs/reliability.md)
    figures: dict = dataclasses.field(default_factory=dict)   # measured numbers for the docs


def row(group: str, case: str, expected: str, problems: list[str], summary: str = "",
        finding: str = "", **figures) -> Row:
    problems = [p for p in problems if p]
    observed = "; ".join(dict.fromkeys(problems)) if problems else (summary or "as expected")
    return Row(group, case, expected, observed, not problems, finding, figures)


def render(rows: list[Row], width: int = 150) -> str:
    """A plain-text table; long cells wrap inside their column."""
    columns = [("", 4), ("group", 12), ("case", 38), ("expected", 44), ("observed", 0)]
    fixed = sum(w + 1 for _, w in columns[:-1])
    columns[-1] = ("observed", max(30, width - fixed))
    lines = [" ".join(name.ljust(w) for name, w in columns).rstrip(),
             " ".join("-" * w for _, w in columns)]
    for r in rows:
        mark = "ok" if r.ok else "FAIL"
        observed = r.observed + (f" [{r.finding}]" if r.finding and not r.ok else "")
        cells = [mark, r.group, r.case, r.expected, observed]
        wrapped = [textwrap.wrap(c, w) or [""] for c, (_, w) in zip(cells, columns)]
        for i in range(max(len(w) for w in wrapped)):
            lines.append(" ".join((w[i] if i < len(w) else "").ljust(cw)
                                  for w, (_, cw) in zip(wrapped, columns)).rstrip())
    failed = [r for r in rows if not r.ok]
    lines.append("")
    lines.append(f"{len(rows)} cases, {len(rows) - len(failed)} as expected, "
                 f"{len(failed)} mismatched")
    return "\n".join(lines)


def to_json(rows: list[Row]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in rows], indent=1)


def describe_failures(rows: list[Row]) -> str:
    """For assertion messages: only the rows that did not match."""
    return "\n".join(f"{r.group} | {r.case} | expected {r.expected} | observed {r.observed}"
                     + (f" [{r.finding}]" if r.finding else "") for r in rows if not r.ok)
