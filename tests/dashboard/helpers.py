"""Building blocks of the dashboard tests: exposition text as the proxy writes it, and the
service built in-process around a test clock."""

from __future__ import annotations

import bisect

from zai_proxy.metrics import DURATION_BUCKETS


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


class Exposition:
    """Text exposition lines, in the shapes prometheus_client writes them."""

    def __init__(self):
        self.lines: list[str] = []

    def counter(self, name: str, value: float, **labels) -> "Exposition":
        self.lines.append(f"{name}{_labels(labels)} {float(value)}")
        return self

    gauge = counter

    def histogram(self, name: str, observations, bounds=DURATION_BUCKETS,
                  **labels) -> "Exposition":
        """A histogram holding `observations` (a list of values)."""
        values = sorted(observations)
        for bound in (*bounds, float("inf")):
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            count = bisect.bisect_right(values, bound)
            self.lines.append(f"{name}_bucket{_labels({'le': le, **labels})} {float(count)}")
        self.lines.append(f"{name}_count{_labels(labels)} {float(len(values))}")
        self.lines.append(f"{name}_sum{_labels(labels)} {float(sum(values))}")
        return self

    def text(self) -> str:
        return "# HELP zai_proxy_requests_total Requests.\n" \
               "# TYPE zai_proxy_requests_total counter\n" + "\n".join(self.lines) + "\n"


def requests_text(counts: dict[str, float], variant: str = "production",
                  in_flight: float = 0, max_workers: float = 10) -> str:
    """A pod's exposition with zai_proxy_requests_total per status code."""
    expo = Exposition()
    for status, value in counts.items():
        expo.counter("zai_proxy_requests_total", value, method="POST",
                     path="/v1/chat/completions", status_code=status, variant=variant)
    expo.gauge("zai_proxy_concurrent_requests", in_flight, variant=variant)
    expo.gauge("zai_proxy_max_workers", max_workers, variant=variant)
    return expo.text()


_BUILT: list = []


def close_all() -> None:
    while _BUILT:
        _BUILT.pop().close()


def make_service(clock, targets: str, tmp_path=None, resolver=None, **env):
    """The service in-process (collector not started: the test calls tick())."""
    from zai_dashboard import config
    from zai_dashboard.service import Service
    from zai_dashboard.targets import resolve_all

    settings = {"DASHBOARD_TARGETS": targets, "DASHBOARD_SCRAPE_INTERVAL": "5s",
                "DASHBOARD_DB_PATH": str(tmp_path / "dashboard.db") if tmp_path else ":memory:"}
    settings.update({k: str(v) for k, v in env.items()})
    service = Service(config.load(settings), clock=clock, resolver=resolver or resolve_all)
    _BUILT.append(service)
    return service


def make_app(clock, targets: str, tmp_path=None, resolver=None, **env):
    from zai_dashboard import config
    from zai_dashboard.app import create_app
    from zai_dashboard.targets import resolve_all

    settings = {"DASHBOARD_TARGETS": targets, "DASHBOARD_SCRAPE_INTERVAL": "5s",
                "DASHBOARD_DB_PATH": str(tmp_path / "dashboard.db") if tmp_path else ":memory:",
                "DASHBOARD_LOG_LEVEL": "warning"}
    settings.update({k: str(v) for k, v in env.items()})
    app = create_app(config.load(settings), clock=clock, resolver=resolver or resolve_all,
                     start=False)
    _BUILT.append(app.extensions["zai_dashboard"])
    return app, app.extensions["zai_dashboard"]
