"""What the dashboard shows, per variant, read through Prometheus's HTTP API; and the alerts.

Every panel target of the chart's dashboard (tools/chart/dashboard_queries.py) is evaluated with
Grafana's variables substituted (`$deployment_variant` = production|canary, `$namespace` = All,
`$__rate_interval` = the given window). A target's value for a variant is the sum of its series
for that variant (a panel split by error type or reason sums to the variant's total); a panel's
value is its first target's. NaN (a quantile of no traffic) and missing series are `None`.

Outputs (`write()`): `summary.json` (`panels: {title: {variant: value}}`, `alerts: {name: state}`,
plus the per-target values, the highest state each alert reached and the run's settings), one
PNG per panel (production against canary over the run, from query_range) and `report.md`.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tools.chart.dashboard_queries import Query, load, queries, substitute

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
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "currencyUSD":
        return f"${value:.4f}/h"
    if unit in ("reqps", "ops"):
        return f"{value:.2f}/s"
    if "tokens/s" in unit:
        return f"{value:.1f} tok/s"
    return f"{value:.3g}"  # "short" and the rest: a plain number


def _display_name(q: Query, variant: str) -> str:
    """The series name Grafana shows (legend with the variant, other labels as their names)."""
    name = re.sub(r"\{\{\s*deployment_variant\s*\}\}", variant, q.legend)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", r"\1", name)


def _unit(q: Query, panel: dict) -> str:
    """The panel's unit, or the one a field override (byRegexp/byName/byFrameRefID) gives it."""
    unit = q.unit
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
    return unit


def _units() -> dict[tuple[str, str], str]:
    panels = {p["id"]: p for p in load()["panels"]}
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


AXIS_LABELS = {"percentunit": "percent", "s": "seconds", "reqps": "requests/s", "ops": "per second",
               "currencyUSD": "USD per hour", "short": ""}


def plot_panels(prom, out: Path, start: float, end: float, rate_interval: str,
                marks: dict[str, float] | None = None) -> dict[str, str]:
    """One PNG per panel over [start, end]: production against canary, with vertical lines at
    `marks` (label -> Unix time, e.g. when the canary fault began). Returns title -> file."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import PercentFormatter

    step = max(1.0, (end - start) / 240)
    units = _units()
    files: dict[str, str] = {}
    by_panel: dict[str, list[Query]] = {}
    for q in panel_queries():
        by_panel.setdefault(q.title, []).append(q)
    for title, qs in by_panel.items():
        fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
        plotted = 0
        for n, q in enumerate(qs):
            expr = substitute(q.expr, variants=VARIANTS, rate_interval=rate_interval)
            result = prom.query_range(f"sum by (deployment_variant) ({expr})", start, end, step)
            order = {v: i for i, v in enumerate(VARIANTS)}
            result.sort(key=lambda r: order.get(r["metric"].get("deployment_variant"), 9))
            for series in result:
                variant = series["metric"].get("deployment_variant", "?")
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                label = variant if len(qs) == 1 else f"{variant} {target_label(q)}"
                ax.plot(xs, ys, STYLES[n % len(STYLES)], color=COLORS.get(variant, "gray"),
                        label=label)
                plotted += 1
        unit = units[(title, target_label(qs[0]))]
        for label, at in (marks or {}).items():
            ax.axvline(at - start, color="tab:red", alpha=0.5, linewidth=1)
            ax.annotate(label, (at - start, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", color="tab:red",
                        fontsize="small")
        ax.set_title(title)
        ax.set_xlabel("seconds since the start of the traffic")
        ax.set_ylabel(AXIS_LABELS.get(unit, unit.replace("suffix:", "").strip()))
        if unit == "percentunit":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(bottom=0)
        if plotted:
            ax.legend(fontsize="small", loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        name = f"panel-{_slug(title)}.png"
        fig.savefig(out / name)
        plt.close(fig)
        files[title] = name
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
