"""The JSON API's shapes (dashboard/API.md) and its error answers, through the Flask app."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.dashboard.helpers import make_app, requests_text
from zai_dashboard.figures import FIGURES

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_765_000_000


def api_md_keys(heading: str) -> set[str]:
    """The top-level keys of the JSON example under a heading of API.md."""
    text = (ROOT / "dashboard/API.md").read_text()
    block = text.split(heading, 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return set(json.loads(block))


@pytest.fixture
def served(clock, exposition, tmp_path):
    prod, canary = exposition(), exposition()
    app, service = make_app(clock, f"production=http://user:s3cret-pass@127.0.0.1:{prod.port}"
                                   f"/metrics;canary={canary.url()}", tmp_path)
    counts = {"production": 0, "canary": 0}

    def tick(t, production=10, canary_=5, canary_errors=0):
        counts["production"] += production
        counts["canary"] += canary_
        prod.set(requests_text({"200": counts["production"]}))
        canary.set(requests_text({"200": counts["canary"], "500": canary_errors}))
        clock.now = t + 0.5
        return service.collector.tick(t)

    return app, service, tick


def test_config_has_the_documented_keys_and_no_target(served):
    app, _, _ = served
    response = app.test_client().get("/api/config")
    body = response.get_json()
    assert set(body) == api_md_keys("`GET /api/config`")
    assert body["variants"] == ["production", "canary"] and body["source"] == "scrape"
    assert body["scrape_interval_s"] == 5 and body["verdict_window_s"] == 600
    assert body["retention"] == {"raw_s": 86400, "rollup_s": 604800, "rollup_step_s": 60}
    assert body["thresholds"]["error_ratio_factor"] == 2.0
    text = response.get_data(as_text=True)
    assert "127.0.0.1" not in text and "s3cret" not in text and "http" not in text
    assert "Access-Control-Allow-Origin" not in response.headers


def test_status_has_the_documented_shape(served):
    app, _, tick = served
    tick(T0)
    tick(T0 + 5)
    body = app.test_client().get("/api/status").get_json()
    assert set(body) == api_md_keys("`GET /api/status`")
    assert body["storage"] == {"state": "ok", "path_ok": True, "reset": None}
    production = body["variants"]["production"]
    assert set(production) == {"state", "pods_up", "pods_total", "last_scrape", "last_success",
                               "error", "build", "last_60s", "quota"}
    assert set(production["last_60s"]) == set(FIGURES)
    assert production["last_60s"]["requests_per_s"] == 2.0
    assert set(production["quota"]) == {"five_hour_used_ratio", "five_hour_reset",
                                        "weekly_used_ratio", "weekly_reset"}
    assert "s3cret" not in json.dumps(body)


def test_status_goes_stale_then_down_without_new_ticks(served, clock):
    app, _, tick = served
    tick(T0)
    client = app.test_client()
    states = []
    for seconds in (4, 10.5, 15.5):
        clock.now = T0 + seconds
        states.append(client.get("/api/status").get_json()["variants"]["canary"]["state"])
    assert states == ["up", "stale", "down"]


def test_series_columns_have_nulls_for_gaps(served, clock):
    app, _, tick = served
    tick(T0)
    tick(T0 + 5)
    tick(T0 + 15)          # T0+10 was never collected
    clock.now = T0 + 16
    body = app.test_client().get("/api/series?range=5m").get_json()
    assert set(body) == api_md_keys("`GET /api/series")
    assert body["step_s"] == 5 and body["resolution"] == "raw"
    assert body["t"] == list(range(body["from"], body["to"] + 5, 5))
    assert body["t"][-1] == T0 + 15
    for variant in ("production", "canary"):
        columns = body["variants"][variant]
        assert set(columns) == set(FIGURES)
        assert all(len(column) == len(body["t"]) for column in columns.values())
    rates = dict(zip(body["t"], body["variants"]["production"]["requests_per_s"]))
    assert rates[T0] is None          # the baseline tick: nothing to rate yet
    assert rates[T0 + 5] == 2.0
    assert rates[T0 + 10] is None     # the gap
    assert rates[T0 + 15] == 1.0      # 10 requests over the 10 s since the last tick
    assert rates[T0 - 5] is None      # before the service ran


def test_series_by_variant_and_by_explicit_window(served, clock):
    app, _, tick = served
    for k in range(4):
        tick(T0 + 5 * k)
    client = app.test_client()
    body = client.get("/api/series?variant=canary&range=15m").get_json()
    assert list(body["variants"]) == ["canary"]
    body = client.get(f"/api/series?from={T0}&to={T0 + 15}&step=10").get_json()
    assert body["t"] == [T0, T0 + 10] and body["step_s"] == 10
    # Buckets of two ticks: the deltas summed over the seconds they cover.
    assert body["variants"]["production"]["requests_per_s"] == [2.0, 2.0]
    assert body["variants"]["canary"]["requests_per_s"] == [1.0, 1.0]


@pytest.mark.parametrize("query, name", [
    ("range=2d", "range"),
    ("range=1h&from=1", "range"),
    ("from=abc", "from"),
    (f"from={T0}&to={T0 - 10}", "to"),
    ("step=7", "step"),
    ("step=x", "step"),
    ("range=7d&step=5", "step"),
    ("variant=staging", "variant"),
])
def test_bad_series_parameters_are_400_naming_the_parameter(served, query, name):
    app, _, _ = served
    response = app.test_client().get(f"/api/series?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(name)


def test_breakdown_by_status_and_its_errors(served, clock):
    app, _, tick = served
    tick(T0)
    tick(T0 + 5, canary_errors=2)
    client = app.test_client()
    body = client.get("/api/breakdown?by=status&range=1h").get_json()
    assert body["by"] == "status"
    assert body["rows"] == [{"variant": "production", "key": "200", "requests": 10.0},
                            {"variant": "canary", "key": "200", "requests": 5.0},
                            {"variant": "canary", "key": "500", "requests": 2.0}]
    assert client.get("/api/breakdown?by=error_type&range=1h").get_json()["rows"] == []
    response = client.get("/api/breakdown?by=colour")
    assert response.status_code == 400 and response.get_json()["error"].startswith("by")


def test_csv_export(served, clock):
    app, _, tick = served
    tick(T0)
    tick(T0 + 5)
    response = app.test_client().get("/api/export.csv?range=5m&variant=all")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["time_utc", "variant", *FIGURES]
    assert len(rows) == 1 + 2 * 61
    last = [row for row in rows if row[0] == "2025-12-06T05:46:45Z"]
    assert [row[1] for row in last] == ["production", "canary"]
    assert last[0][2] == "2.0" and last[1][2] == "1.0"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[0]) for row in rows[1:])


def test_unknown_paths_and_methods_answer_json(served):
    app, _, _ = served
    client = app.test_client()
    response = client.get("/api/nope")
    assert response.status_code == 404 and "error" in response.get_json()
    response = client.post("/api/config")
    assert response.status_code == 405 and "read-only" in response.get_json()["error"]
    response = client.get("/api/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400 and "Last-Event-ID" in response.get_json()["error"]


def test_probes(served):
    app, _, tick = served
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503      # no tick yet
    tick(T0)
    assert client.get("/readyz").get_json() == {"status": "ready", "storage": "ok"}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "zai_dashboard_ticks_total 1.0" in metrics
    assert 'zai_dashboard_variant_state{state="up",variant="canary"} 1.0' in metrics
    assert "s3cret" not in metrics and "127.0.0.1" not in metrics


def test_ui_missing_build_says_how_to_make_it(clock, tmp_path):
    app, _ = make_app(clock, "production=http://127.0.0.1:9/metrics",
                      DASHBOARD_UI_DIR=str(tmp_path / "no-dist"))
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert "npm run build" in response.get_data(as_text=True)


def test_ui_is_served_with_an_spa_fallback(clock, tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=root></div>")
    (dist / "assets" / "index-abc123.js").write_text("console.log(1)")
    app, _ = make_app(clock, "production=http://127.0.0.1:9/metrics", DASHBOARD_UI_DIR=str(dist))
    client = app.test_client()
    for path in ("/", "/?range=24h", "/some/client/route"):
        response = client.get(path)
        assert response.status_code == 200 and "id=root" in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-cache"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    asset = client.get("/assets/index-abc123.js")
    assert asset.status_code == 200 and "immutable" in asset.headers["Cache-Control"]
    assert client.get("/assets/missing.js").status_code == 404
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt"):
        assert "TOPSECRET" not in client.get(path).get_data(as_text=True)
    assert client.get("/api/config").is_json
