"""The Prometheus HTTP API source. Against a real Prometheus it runs in tests/test_e2e_monitoring.py
(on the series the rendered ServiceMonitors produce); here, what happens without one."""

from __future__ import annotations


def test_prometheus_unreachable_marks_every_variant_down(clock):
    from zai_dashboard import config
    from zai_dashboard.service import Service

    service = Service(config.load({"DASHBOARD_PROMETHEUS_URL": "http://127.0.0.1:9",
                                   "DASHBOARD_VARIANTS": "production,canary,shadow",
                                   "DASHBOARD_DB_PATH": ":memory:"}), clock=clock)
    try:
        payload = service.collector.tick(int(clock.now))
        assert payload["states"] == {"production": "down", "canary": "down", "shadow": "down"}
        assert service.status.snapshot("canary", clock.now)["error"] == "Prometheus query failed"
    finally:
        service.close()
