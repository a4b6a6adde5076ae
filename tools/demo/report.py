"""What the dashboard shows, per variant, read through Prometheus's HTTP API; and the alerts.

Every panel target of the chart's dashboard (tools/chart/dashboard_queries.py) is evaluated with
Grafana's variables substituted (`$deployment_variant` = production|canary, `$namespace` = All,
`$__rate_interval` = the given window). A target's value for a variant is the sum of its series
for that variant (a panel split by error type or reason sums to the variant's total); a panel's
value is its first target's. NaN (a quantile of no traffic) and missing series are `None`.

Outputs: `summary.json` (`panels: {title: {variant: value}}`, `alerts: {name: state}`, plus the
per-target values, the highest state each alert reached and the run's settings), one PNG per panel
and `report.md`. A PNG draws every series of the panel's own queries over the run (from
query_range), named as Grafana's legend names it (a Z.AI error keeps its class and code), the
panel's unit on the left axis and a target whose field override gives it another unit on its own
right axis (a count is never read off a percent axis, a wait in seconds is not flattened against a
rate).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tools.chart.dashboard_queries import Query, load, panels_with_rows, queries, substitute
from tools.chart.dashboard_queries import panel_queries as targets_of  # one panel's

VARIANTS = ("production", "canary")
STATE_ORDER = {"inactive": 0, "pending": 1, "firing": 2}
COLORS = {"production": "tab:blue", "canary": "tab:orange"}
STYLES = ("-", "--", ":", "-.")


def target_label(q: Query) -> str:
    """The target's legend without the variant; a per-label split reads "sum over <label>"
    because a variant's value sums its series."""
    label = re.sub(r"\{\{\s*deployment_variant\s*\}\}\s*", "", q.legend).strip()
    label = re.sub(r"(\{\{\s*\w+\s*\}\}\s*)+", lambda m: "sum over " + ", ".join(
        re.findall(r"\w+", m.group(0))) + " ", label).strip()
    return label or q.ref_id


def _number(raw: str) -> float | None:
    value = float(raw)
    return None if math.isnan(value) or math.isinf(value) else value


def by_variant(result: list[dict]) -> dict[str, float | None]:
    """Sum of finite values per deployment_variant; a variant whose series are all NaN → None."""
    out: dict[str, float | None] = {}
    for series in result:
        variant = series["metric"].get("deployment_variant", "")
        value = _number(series["value"][1])
        if value is None:
            out.setdefault(variant, None)
        else:
            out[variant] = (out.get(variant) or 0.0) + value
    return out


def panel_queries() -> list[Query]:
    return queries()


def dashboard_panels() -> list[dict]:
    """The dashboard's panels that show data (rows left out), in order."""
    return [panel for panel, _ in panels_with_rows(load())]


@dataclass
class Snapshot:
    """One evaluation of every panel target and every alert."""
    at: float
    targets: dict[str, dict[str, dict[str, float | None]]]   # title -> target -> variant -> value
    series: dict[str, dict[str, set[str]]]                   # title -> target -> variants seen
    alerts: dict[str, str]

    def panels(self) -> dict[str, dict[str, float | None]]:
        return {title: next(iter(targets.values())) for title, targets in self.targets.items()}

    def variants_with_data(self, title: str) -> set[str]:
        """Variants for which at least one target of the panel returned a series."""
        return set().union(*self.series[title].values())


def snapshot(prom, rate_interval: str, at: float | None = None) -> Snapshot:
    at = time.time() if at is None else at
    targets: dict[str, dict] = {}
    series: dict[str, dict] = {}
    for q in panel_queries():
        result = prom.query(substitute(q.expr, variants=VARIANTS, rate_interval=rate_interval), at)
        values = by_variant(result)
        targets.setdefault(q.title, {})[target_label(q)] = {v: values.get(v) for v in VARIANTS}
        series.setdefault(q.title, {})[target_label(q)] = set(values)
    return Snapshot(at, targets, series, prom.alert_states())


# -- printing ----------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "percentunit":
        return f"{value * 100:.2f}%"
    if unit == "s":
        if value < 0.001:
            return f"{value * 1e6:.0f} µs"
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "currencyUSD":
        return f"${value:.4f}/h"
    if unit in ("reqps", "ops"):
        return f"{value:.2f}/s"
    if unit == "opm":
        return f"{value:.2f}/min"
    if "tokens/s" in unit:
        return f"{value:.1f} tok/s"
    return f"{value:.3g}"  # "short" and the rest: a plain number


def _display_name(q: Query, variant: str) -> str:
    """The series name Grafana shows (legend with the variant, other labels as their names)."""
    name = re.sub(r"\{\{\s*deployment_variant\s*\}\}", variant, q.legend)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", r"\1", name)


def _unit(q: Query, panel: dict) -> str:
    """The target's unit: the panel's, or the one a field override gives it."""
    return _placement(q, panel)[0]


def _units() -> dict[tuple[str, str], str]:
    panels = {p["id"]: p for p in dashboard_panels()}
    return {(q.title, target_label(q)): _unit(q, panels[q.panel_id]) for q in panel_queries()}


def table_rows(snap: Snapshot) -> list[tuple[str, str, str]]:
    units = _units()
    rows = []
    for title, targets in snap.targets.items():
        for label, values in targets.items():
            name = title if len(targets) == 1 else f"{title} [{label}]"
            unit = units[(title, label)]
            rows.append((name, *(fmt(values[v], unit) for v in VARIANTS)))
    return rows


def table(snap: Snapshot) -> str:
    rows = table_rows(snap)
    width = max(len(r[0]) for r in rows)
    lines = [f"{'panel':<{width}}  {'production':>14}  {'canary':>14}"]
    lines += [f"{name:<{width}}  {prod:>14}  {can:>14}" for name, prod, can in rows]
    return "\n".join(lines)


def alerts_text(states: dict[str, str]) -> str:
    active = {n: s for n, s in states.items() if s != "inactive"}
    line = ", ".join(f"{n}={s}" for n, s in sorted(active.items())) or "none"
    return f"alerts pending/firing: {line} ({len(states) - len(active)} inactive)"


# -- files -------------------------------------------------------------------------------------
def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


AXIS_LABELS = {"percentunit": "percent", "s": "duration", "reqps": "requests/s", "ops": "per second",
               "opm": "per minute", "currencyUSD": "USD per hour", "short": "count"}
# Line styles when colour tells the series apart: (variant, target) in this order.
PAIR_STYLES = ("-", "--", ":", "-.")


@dataclass
class Line:
    """One series of a panel as Grafana draws it: its display name, the unit and side of the
    axis it belongs to (a field override may give a target its own unit and the right axis)."""
    label: str
    variant: str
    ref_id: str
    series: tuple[str, ...]   # the values of the labels other than deployment_variant
    unit: str
    right: bool
    xs: list[float]
    ys: list[float]


def _placement(q: Query, panel: dict) -> tuple[str, bool]:
    """(unit, drawn on the right axis) of a target, from the panel's unit and field overrides
    (byRegexp/byName on the display name, byFrameRefID), as Grafana applies them."""
    unit, right = q.unit, False
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        kind, option = matcher.get("id"), str(matcher.get("options", ""))
        name = _display_name(q, VARIANTS[0])
        hit = ((kind == "byRegexp" and re.search(option, name)) or
               (kind == "byName" and option == name) or
               (kind == "byFrameRefID" and option == q.ref_id))
        for prop in override.get("properties", []) if hit else ():
            if prop.get("id") == "unit":
                unit = prop["value"]
            elif prop.get("id") == "custom.axisPlacement":
                right = prop["value"] == "right"
    return unit, right


def series_name(legend: str, labels: dict[str, str]) -> str:
    """Grafana's legend: every {{label}} replaced by the series' value of that label."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend).strip()


def panel_lines(panel: dict, prom, start: float, end: float, step: float,
                rate_interval: str) -> list[Line]:
    """Every series of every target of `panel` over [start, end], each series on its own (a
    panel split by class and code keeps them), production's first."""
    lines = []
    for q in targets_of(panel):
        unit, right = _placement(q, panel)
        expr = substitute(q.expr, variants=VARIANTS, rate_interval=rate_interval)
        for series in prom.query_range(expr, start, end, step):
            labels = series["metric"]
            lines.append(Line(series_name(q.legend, labels) or q.ref_id,
                              labels.get("deployment_variant", "?"), q.ref_id,
                              tuple(v for k, v in sorted(labels.items())
                                    if k != "deployment_variant"), unit, right,
                              [float(at) - start for at, _ in series["values"]],
                              [float(value) for _, value in series["values"]]))
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(lines, key=lambda line: (order.get(line.variant, 9), line.ref_id, line.label))


def _styles(lines: list[Line]) -> list[tuple]:
    """(colour, line style) per line. One series per variant and target: the variant's colour,
    the target by style (p50 solid, p95 dashed). Several (a split by class and code, by
    direction and model): a colour per label set, the same in both variants, and the variant and
    target by style."""
    from matplotlib import colormaps
    refs = sorted({line.ref_id for line in lines})
    keys = sorted({line.series for line in lines})
    if len(keys) <= 1:
        return [(COLORS.get(line.variant, "gray"), STYLES[refs.index(line.ref_id) % len(STYLES)])
                for line in lines]
    palette = colormaps["tab10" if len(keys) <= 10 else "tab20"]
    def pair(line: Line) -> tuple[int, int]:
        return refs.index(line.ref_id), (VARIANTS + (line.variant,)).index(line.variant)
    pairs = sorted({pair(line) for line in lines})
    return [(palette(keys.index(line.series) % palette.N),
             PAIR_STYLES[pairs.index(pair(line)) % len(PAIR_STYLES)]) for line in lines]


def _format_axis(ax, unit: str, lines: list[Line]) -> None:
    from matplotlib.ticker import EngFormatter, PercentFormatter
    ax.set_ylabel(AXIS_LABELS.get(unit, unit.replace("suffix:", "").strip()))
    if unit == "percentunit":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif unit == "s":
        ax.yaxis.set_major_formatter(EngFormatter(unit="s"))   # 500 µs, 10 ms, 2 s
    values = [y for line in lines for y in line.ys if math.isfinite(y)]
    if values and max(values) == 0:
        ax.set_ylim(0, 1)   # all zero: a flat line at the bottom, not one lost in ±0.05
    else:
        ax.set_ylim(bottom=0)


def panel_figure(panel: dict, lines: list[Line], marks: dict[str, float] | None = None):
    """A matplotlib Figure of one panel: the panel's unit on the left axis; series whose unit
    differs (a field override) on their own right axis, so a count is never read as a percent and
    a wait in seconds is not flattened against a rate. The legend sits under the plot, as
    Grafana's does; targets that returned no series are named in the plot."""
    from matplotlib.figure import Figure

    rows = -(-len(lines) // 3) if len(lines) > 4 else 1
    fig = Figure(figsize=(9, 4 + 0.2 * rows), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    base_unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    axes = {(base_unit, False): ax}
    def side(line: Line) -> tuple[str, bool]:
        return (line.unit, line.right or line.unit != base_unit)
    for line in lines:
        if side(line) not in axes:
            axes[side(line)] = ax.twinx()
    for line, (color, style) in zip(lines, _styles(lines)):
        axes[side(line)].plot(line.xs, line.ys, style, color=color, label=line.label)
    for key, axis in axes.items():
        _format_axis(axis, key[0], [line for line in lines if side(line) == key])
    for label, at in (marks or {}).items():
        ax.axvline(at, color="tab:red", alpha=0.5, linewidth=1)
        ax.annotate(label, (at, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color="tab:red", fontsize="small")
    kind = " (a gauge in Grafana: the last value; here over the run)" \
        if panel.get("type") == "gauge" else ""
    ax.set_title(panel["title"] + kind)
    ax.set_xlabel("seconds since the start of the traffic")
    drawn = {line.ref_id for line in lines}
    missing = [target_label(q) for q in targets_of(panel) if q.ref_id not in drawn]
    if lines:
        handles = [h for axis in axes.values() for h in axis.get_legend_handles_labels()[0]]
        fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center",
                   ncol=len(handles) if len(handles) <= 4 else 3, fontsize="small", frameon=False)
    if missing:
        ax.text(0.99, 0.03, "no data: " + ", ".join(missing), ha="right", va="bottom",
                transform=ax.transAxes, fontsize="small", color="dimgray")
    ax.grid(alpha=0.3)
    return fig


def plot_panels(prom, out: Path, start: float, end: float, rate_interval: str,
                marks: dict[str, float] | None = None) -> dict[str, str]:
    """One PNG per panel over [start, end]: production against canary, each series of the
    panel's own queries, with vertical lines at `marks` (label -> Unix time, e.g. when the canary
    fault began). Returns title -> file."""
    step = max(1.0, (end - start) / 240)
    relative = {label: at - start for label, at in (marks or {}).items()}
    files: dict[str, str] = {}
    for panel in dashboard_panels():
        fig = panel_figure(panel, panel_lines(panel, prom, start, end, step, rate_interval),
                           relative)
        name = f"panel-{_slug(panel['title'])}.png"
        fig.savefig(out / name)
        files[panel["title"]] = name
    return files


def summary(snap: Snapshot, peaks: dict[str, str], extra: dict) -> dict:
    return {
        "panels": snap.panels(),
        "alerts": dict(snap.alerts),
        "panel_targets": snap.targets,
        "alerts_peak": peaks,
        "evaluated_at": snap.at,
        **extra,
    }


def write_summary(out: Path, snap: Snapshot, peaks: dict[str, str], extra: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary(snap, peaks, extra), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def write_report(out: Path, snap: Snapshot, peaks: dict[str, str], images: dict[str, str],
                 extra: dict) -> Path:
    lines = ["# zai-proxy demo: production vs canary", ""]
    lines.append(f"Canary fault: `{extra.get('fault', 'none')}`; run of "
                 f"{extra.get('duration_seconds', '?')} s; scrape and rule evaluation every "
                 f"{extra.get('scrape_interval')}; panel windows (`$__rate_interval`) "
                 f"{extra.get('rate_interval')}.")
    lines.append("")
    lines.append(f"The alerts come from a copy of the chart's rendered PrometheusRules in which "
                 f"every `for` is divided by {extra.get('for_factor'):g} (5m becomes "
                 f"{extra.get('for_5m')}); expressions, windows and thresholds are the chart's.")
    lines += ["", "## Panels (last evaluation)", "", "| panel | production | canary |",
              "|---|---:|---:|"]
    lines += [f"| {name} | {prod} | {can} |" for name, prod, can in table_rows(snap)]
    lines += ["", "## Alerts", "", "| alert | state at the end | highest state in the run |",
              "|---|---|---|"]
    lines += [f"| {name} | {state} | {peaks.get(name, state)} |"
              for name, state in sorted(snap.alerts.items())]
    lines += ["", "## Panels over the run", ""]
    lines += [f"![{title}]({name})" for title, name in images.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def raise_peaks(peaks: dict[str, str], states: dict[str, str]) -> None:
    for name, state in states.items():
        if STATE_ORDER.get(state, 0) >= STATE_ORDER.get(peaks.get(name, "inactive"), 0):
            peaks[name] = state
