"""A real Prometheus (Debian's package) configured from the chart's rendered monitoring objects.

Scrape config: one job per rendered ServiceMonitor, built by tools/chart/scrape_config.py with the
Prometheus Operator's relabelings plus the ServiceMonitor's own (so series carry
`deployment_variant`). Kubernetes service discovery is emulated by static targets: the Services a
ServiceMonitor selects (its `selector.matchLabels` and `namespaceSelector.matchNames`), and for
each Service the pods whose labels match its selector, each target labelled with the meta labels
SD would give (`__meta_kubernetes_namespace`, `_service_name`, `_service_label_<label>`,
`_pod_name`, `_endpoint_port_name`). Only the scrape interval differs from the ServiceMonitor's
(shorter, so a test or demo sees minutes of behaviour in seconds).

Rules: each rendered PrometheusRule's `.spec` is written as a rule file unchanged except for the
alerts' `for`, which `shorten_for()` divides by a factor (expressions, windows, thresholds and
labels stay the chart's).
"""

from __future__ import annotations

import copy
import re
import shutil
import time
from pathlib import Path

import requests
import yaml

from tools.chart.scrape_config import scrape_job
from tools.demo.pods import Pod, free_port
from tools.demo.processes import Children

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


def duration(value: float) -> str:
    if value >= 1 and float(value).is_integer():
        return f"{int(value)}s"
    return f"{max(1, round(value * 1000))}ms"


def shorten_for(spec: dict, factor: float) -> dict:
    """A copy of a rule file with every alert's `for` divided by `factor` (at least 1s)."""
    out = copy.deepcopy(spec)
    for group in out["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = duration(max(1.0, round(seconds(rule["for"]) / factor)))
    return out


def _matches(selector: dict, labels: dict) -> bool:
    if set(selector) - {"matchLabels"}:
        raise ValueError(f"selector {selector} is not emulated (only matchLabels)")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def selected_services(servicemonitor: dict, services: list[dict]) -> list[dict]:
    spec = servicemonitor["spec"]
    names = spec.get("namespaceSelector", {}).get("matchNames")
    if names is None:  # the Operator's default: the ServiceMonitor's own namespace
        names = [servicemonitor["metadata"]["namespace"]]
    return [s for s in services if s["metadata"]["namespace"] in names
            and _matches(spec["selector"], s["metadata"].get("labels", {}))]


def endpoints(service: dict, pods: list[Pod]) -> list[Pod]:
    selector = service["spec"]["selector"]
    return [p for p in pods if p.namespace == service["metadata"]["namespace"]
            and all(p.labels.get(k) == v for k, v in selector.items())]


def scrape_configs(servicemonitors: list[dict], services: list[dict], pods: list[Pod],
                   interval: str) -> list[dict]:
    jobs = []
    for sm in servicemonitors:
        for service in selected_services(sm, services):
            targets = endpoints(service, pods)
            if not targets:
                continue
            job = scrape_job(sm, service, [p.address for p in targets], [p.name for p in targets])
            job["scrape_interval"] = interval
            job["scrape_timeout"] = interval if seconds(interval) < 10 else "10s"
            jobs.append(job)
    return jobs


def _unix(rfc3339: str) -> float:
    """Prometheus's RFC 3339 timestamps carry nanoseconds; datetime takes microseconds."""
    from datetime import datetime
    match = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {rfc3339!r}")
    head, frac, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}{zone}").timestamp()


class Prometheus:
    """The server (a child process) and a small client of its HTTP API."""

    def __init__(self, directory: Path, jobs: list[dict], rule_specs: dict[str, dict],
                 interval: str):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rule_files = []
        for name, spec in rule_specs.items():
            path = self.dir / f"{name}.rules.yaml"
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            rule_files.append(str(path))
        self.config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval if seconds(interval) < 10 else "10s"},
            "rule_files": rule_files,
            "scrape_configs": jobs,
        }
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.session = requests.Session()

    @staticmethod
    def binary() -> str:
        found = shutil.which("prometheus") or (
            "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
        if not found:
            raise RuntimeError("prometheus not found: run `make tools` (Debian package prometheus)")
        return found

    def start(self, children: Children, timeout: float = 30.0) -> "Prometheus":
        argv = [self.binary(), f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d", "--log.level=warn"]
        self.child = children.start("prometheus", argv, self.dir / "prometheus.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise RuntimeError(f"prometheus exited:\n{self.child.tail()}")
            try:
                if self.session.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready after {timeout}s:\n{self.child.tail()}")

    def _get(self, path: str, **params) -> dict:
        response = self.session.get(self.url + path, params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self._get("/api/v1/query_range", query=expr, start=f"{start:.3f}",
                         end=f"{end:.3f}", step=f"{step}")["result"]

    def alert_rules(self) -> list[dict]:
        """Every alerting rule with its state (`inactive`, `pending`, `firing`)."""
        groups = self._get("/api/v1/rules", type="alert")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def alert_states(self) -> dict[str, str]:
        return {rule["name"]: rule["state"] for rule in self.alert_rules()}

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets", state="active")["activeTargets"]

    def label_names(self) -> list[str]:
        return self._get("/api/v1/labels")

    def wait_rules_evaluated(self, after: float, timeout: float = 30.0) -> None:
        """Until every rule group has been evaluated after `after` (a Unix time), so that no
        state left from before the first scrape (an `absent()` alert pending) is visible."""
        deadline = time.monotonic() + timeout
        while True:
            groups = self._get("/api/v1/rules")["groups"]
            if groups and all(_unix(g["lastEvaluation"]) > after for g in groups):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"rule groups not evaluated after {timeout}s")
            time.sleep(0.1)

    def wait_targets_up(self, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            if len(targets) >= count and all(t["health"] == "up" for t in targets):
                return targets
            if time.monotonic() > deadline:
                raise RuntimeError(f"targets not all up after {timeout}s: "
                                   + "; ".join(f"{t['scrapeUrl']} {t['health']} {t['lastError']}"
                                               for t in targets))
            time.sleep(0.2)
