"""The optional source: a Prometheus server's HTTP API instead of the pods themselves.

For clusters where the dashboard may not reach the proxies' pods but may reach Prometheus. Each
tick reads, at the tick's time, the raw series of the families the dashboard shows (instant
query), grouped by the target label `deployment_variant` (the ServiceMonitors relabel the
Service's `version` into it) and by `instance`, which plays the pod. The series then go through
the same per-pod delta rules as scraped ones; `up` says which pods answered.

Prometheus only has new values once per its own scrape interval (30 s in the chart), so set
DASHBOARD_SCRAPE_INTERVAL to that interval with this source.
"""

from __future__ import annotations

import requests

from .config import Config
from .deltas import PodScrape, VariantScrape
from .exposition import WANTED_REGEX, series_key
from .sources import make_session


class PrometheusSource:
    name = "prometheus"

    def __init__(self, config: Config):
        self.config = config
        self.url = config.prometheus_url
        self.session = make_session(2)
        variants = "|".join(config.variants)
        self.series_query = (f'{{__name__=~"{WANTED_REGEX}",'
                             f'deployment_variant=~"{variants}"}}')
        self.up_query = f'up{{deployment_variant=~"{variants}"}}'

    def close(self) -> None:
        self.session.close()

    def _query(self, expr: str, t: float) -> list[dict]:
        response = self.session.post(f"{self.url}/api/v1/query",
                                     data={"query": expr, "time": f"{t:.3f}"},
                                     timeout=self.config.scrape_timeout)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise ValueError("Prometheus answered an error")
        if body["data"]["resultType"] != "vector":
            raise ValueError("Prometheus answered a non-vector")
        return body["data"]["result"]

    def collect(self, t: float) -> dict[str, VariantScrape]:
        try:
            up = self._query(self.up_query, t)
            series = self._query(self.series_query, t)
        except (requests.RequestException, ValueError, KeyError):
            return {variant: VariantScrape([], "Prometheus query failed")
                    for variant in self.config.variants}
        pods: dict[str, dict[str, dict | None]] = {v: {} for v in self.config.variants}
        for item in up:
            labels = item["metric"]
            variant = labels.get("deployment_variant")
            if variant in pods:
                answered = float(item["value"][1]) == 1.0
                pods[variant][labels.get("instance", "")] = {} if answered else None
        for item in series:
            labels = dict(item["metric"])
            variant = labels.pop("deployment_variant", None)
            instance = labels.pop("instance", "")
            name = labels.pop("__name__", "")
            found = pods.get(variant, {}).get(instance)
            if found is None:
                continue   # a pod Prometheus says is down: its last values are stale
            value = float(item["value"][1])
            if value == value:
                found[series_key(name, labels)] = value
        out = {}
        for variant, found in pods.items():
            results = [PodScrape(key, samples, None if samples is not None else "down")
                       for key, samples in sorted(found.items())]
            out[variant] = VariantScrape(results, None if results else "no target in Prometheus")
        return out
