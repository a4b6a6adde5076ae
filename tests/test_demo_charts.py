"""The demo's per-panel charts (tools/demo/report.py) draw what the Grafana panel shows: each unit
on its own axis, every series under the name Grafana's legend gives it.

The panels are the chart's dashboard JSON; Prometheus's `query_range` answers are given as data
(`Answers`), in the shape its HTTP API returns. The whole path against a real Prometheus runs in
tests/test_e2e_monitoring.py.
"""

from __future__ import annotations

import copy

import pytest

from tools.chart.dashboard_queries import load, panels_with_rows
from tools.demo import report

START = 1_800_000_000.0
POINTS = 30


class Answers:
    """query_range answers: the series of the first family in `families` that the query reads."""

    def __init__(self, families: dict[str, list[tuple[dict, float]]]):
        self.families = families
        self.asked: list[str] = []

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        self.asked.append(expr)
        family = next((f for f in self.families if f in expr), None)
        return [{"metric": labels,
                 "values": [[start + i * step, str(value)] for i in range(POINTS)]}
                for labels, value in self.families.get(family, [])]


def panel(title: str) -> dict:
    return next(p for p, _ in panels_with_rows(load()) if p["title"] == title)


def variants(value_production: float, value_canary: float, **labels) -> list[tuple[dict, float]]:
    return [({"deployment_variant": "production", **labels}, value_production),
            ({"deployment_variant": "canary", **labels}, value_canary)]


def draw(p: dict, answers: Answers):
    lines = report.panel_lines(p, answers, START, START + POINTS, 1.0, "20s")
    return lines, report.panel_figure(p, lines)


def axis_of(fig, label: str):
    """The axis on which the series named `label` is drawn."""
    found = [ax for ax in fig.axes for line in ax.get_lines() if line.get_label() == label]
    assert len(found) == 1, (label, [line.get_label() for ax in fig.axes for line in ax.get_lines()])
    return found[0]


def legend(fig) -> list[str]:
    return [text.get_text() for text in fig.legends[0].get_texts()]


def on_percent_axis(ax) -> bool:
    from matplotlib.ticker import PercentFormatter    # imported with the charts, not at collection
    return isinstance(ax.yaxis.get_major_formatter(), PercentFormatter)


def texts(fig) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


def test_a_count_is_never_drawn_on_a_percent_axis():
    # A percent panel with a count overridden onto the right axis, as a panel that shows
    # utilization and requests in flight together does: 1.5 requests must not read as 150 %.
    p = copy.deepcopy(panel("Worker Utilization"))
    p["type"] = "timeseries"
    p["targets"].append({**p["targets"][0], "refId": "B", "legendFormat": "{{deployment_variant}} in flight",
                         "expr": p["targets"][0]["expr"].split("\n/\n")[0]})
    p["fieldConfig"]["overrides"] = [{
        "matcher": {"id": "byRegexp", "options": ".* in flight$"},
        "properties": [{"id": "unit", "value": "short"},
                       {"id": "custom.axisPlacement", "value": "right"}]}]
    answers = Answers({"zai_proxy_max_workers": variants(0.0375, 0.15),
                       "zai_proxy_concurrent_requests": variants(1.5, 1.5)})
    _, fig = draw(p, answers)
    share, count = axis_of(fig, "production"), axis_of(fig, "production in flight")
    assert share is not count
    assert on_percent_axis(share)
    assert not on_percent_axis(count)
    assert (count.get_ylabel(), share.get_ylabel()) == ("count", "percent")
    assert count.get_ylim()[1] >= 1.5 > share.get_ylim()[1]


def test_concurrent_requests_is_a_count_and_worker_utilization_a_percent():
    answers = Answers({"zai_proxy_max_workers": variants(0.0375, 0.15),
                       "zai_proxy_concurrent_requests": variants(1.5, 1.5)})
    _, fig = draw(panel("Concurrent Requests"), answers)
    assert fig.axes[0].get_ylabel() == "count"
    assert not on_percent_axis(fig.axes[0])
    assert "gauge" in fig.axes[0].get_title()
    _, fig = draw(panel("Worker Utilization"), answers)
    assert on_percent_axis(fig.axes[0])


def test_the_rate_limiter_chart_shows_the_p95_wait_on_a_seconds_axis():
    answers = Answers({"zai_proxy_rate_limit_wait_seconds": variants(0.009, 0.008),
                       "zai_proxy_rate_limit_rejections_total": variants(0.0, 2.5)})
    lines, fig = draw(panel("Rate limiter: P95 wait and rejections"), answers)
    assert {line.label for line in lines} == {"production p95 wait", "canary p95 wait",
                                             "production rejected", "canary rejected"}
    wait, rejected = axis_of(fig, "production p95 wait"), axis_of(fig, "canary rejected")
    assert wait is not rejected
    assert (wait.get_ylabel(), rejected.get_ylabel()) == ("duration", "requests/s")
    # 9 ms fills a good part of its axis instead of lying flat under 2.5 req/s, in ms.
    assert 0.009 < wait.get_ylim()[1] < 0.05
    assert wait.yaxis.get_major_formatter()(0.01) == "10 ms"
    assert set(legend(fig)) == {line.label for line in lines}
    # Below the admission rate nothing is refused: no series, and the chart says so.
    del answers.families["zai_proxy_rate_limit_rejections_total"]
    lines, fig = draw(panel("Rate limiter: P95 wait and rejections"), answers)
    assert {line.label for line in lines} == {"production p95 wait", "canary p95 wait"}
    assert "no data: rejected" in texts(fig)


def test_the_zai_errors_chart_names_class_and_code():
    series = [({"deployment_variant": v, "class": c, "code": code}, rate)
              for v in ("canary", "production")
              for c, code, rate in (("concurrency", "1302", 0.05), ("frequency", "1305", 0.03))]
    answers = Answers({"zai_proxy_zai_errors_total": series})
    lines, fig = draw(panel("Z.AI errors by class and code"), answers)
    names = ["production concurrency 1302", "production frequency 1305",
             "canary concurrency 1302", "canary frequency 1305"]
    assert [line.label for line in lines] == names      # production first, one line each
    assert legend(fig) == names
    # Every query asked for is the panel's own, not a sum that drops class and code.
    assert answers.asked and all(q.startswith("sum by (deployment_variant, class, code)")
                                 for q in answers.asked)
    # A colour per class and code, the same in both variants; the variant by line style.
    drawn = {line.get_label(): (line.get_color(), line.get_linestyle())
             for line in fig.axes[0].get_lines()}
    assert len(set(drawn.values())) == 4
    assert drawn["production concurrency 1302"][0] == drawn["canary concurrency 1302"][0]
    assert drawn["production concurrency 1302"][0] != drawn["production frequency 1305"][0]
    assert drawn["production frequency 1305"][1] != drawn["canary frequency 1305"][1]


@pytest.mark.parametrize("title", ["Token Throughput", "Upstream Errors", "Rate Limit Adjustments"])
def test_split_panels_keep_their_labels(title):
    labels = {"Token Throughput": {"direction": "input", "model": "glm-4.7"},
              "Upstream Errors": {"error_type": "429"},
              "Rate Limit Adjustments": {"direction": "decrease"}}[title]
    family = {"Token Throughput": "zai_proxy_", "Upstream Errors": "zai_proxy_upstream_errors_total",
              "Rate Limit Adjustments": "zai_proxy_rate_limit_adjustments_total"}[title]
    lines, _ = draw(panel(title), Answers({family: variants(1.0, 2.0, **labels)}))
    assert all(all(value in line.label for value in labels.values()) for line in lines), lines
