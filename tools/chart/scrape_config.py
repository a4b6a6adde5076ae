"""A plain Prometheus scrape job derived from a rendered ServiceMonitor, for a Prometheus without
the Operator (the demo's): `scrape_job(servicemonitor, service, ["127.0.0.1:8081"])`.

The targets get the meta labels Kubernetes service discovery would give them (namespace, Service
name and labels, port name), then the relabelings the Prometheus Operator generates for an
endpoint (namespace, service, job, endpoint), then the ServiceMonitor's own relabelings converted
from camelCase. So the series carry `deployment_variant` exactly as in a cluster, taken from the
Service's `version` label; `relabel()` applies `replace` rules so checks can see the result offline.
"""

from __future__ import annotations

import re

# ServiceMonitor (camelCase) -> Prometheus (snake_case) relabel fields.
FIELDS = {"sourceLabels": "source_labels", "separator": "separator", "targetLabel": "target_label",
          "regex": "regex", "modulus": "modulus", "replacement": "replacement", "action": "action"}


def _meta_label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _relabel_config(rule: dict) -> dict:
    out = {FIELDS[k]: v for k, v in rule.items()}
    if "action" in out:
        out["action"] = out["action"].lower()
    return out


def operator_relabelings(port: str) -> list[dict]:
    """What the Prometheus Operator puts before an endpoint's own relabelings (the parts that
    make sense without Kubernetes SD: the target labels every series then carries)."""
    return [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
        {"target_label": "endpoint", "replacement": port},
    ]


def scrape_job(servicemonitor: dict, service: dict, addresses: list[str],
               pod_names: list[str] | None = None) -> dict:
    """One scrape job per ServiceMonitor endpoint (the chart renders one)."""
    endpoint = servicemonitor["spec"]["endpoints"][0]
    meta = {"__meta_kubernetes_namespace": service["metadata"]["namespace"],
            "__meta_kubernetes_service_name": service["metadata"]["name"],
            "__meta_kubernetes_endpoint_port_name": endpoint["port"]}
    for key, value in service["metadata"].get("labels", {}).items():
        meta[f"__meta_kubernetes_service_label_{_meta_label(key)}"] = str(value)
    pod_names = pod_names or [f"{service['metadata']['name']}-{i}" for i in range(len(addresses))]
    job = {
        "job_name": "serviceMonitor/{}/{}/0".format(servicemonitor["metadata"]["namespace"],
                                                    servicemonitor["metadata"]["name"]),
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": endpoint.get("interval", "30s"),
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "static_configs": [{"targets": [address], "labels": {**meta, "__meta_kubernetes_pod_name": pod}}
                           for address, pod in zip(addresses, pod_names)],
        "relabel_configs": operator_relabelings(endpoint["port"])
        + [_relabel_config(r) for r in endpoint.get("relabelings", [])],
    }
    if endpoint.get("scrapeTimeout"):
        job["scrape_timeout"] = endpoint["scrapeTimeout"]
    if endpoint.get("metricRelabelings"):
        job["metric_relabel_configs"] = [_relabel_config(r) for r in endpoint["metricRelabelings"]]
    return job


def relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str]:
    """Apply `replace` relabel configs (the only action the chart's relabelings use), then drop
    the `__` labels as Prometheus does; other actions are refused rather than guessed."""
    out = dict(labels)
    for cfg in configs:
        action = cfg.get("action", "replace")
        if action != "replace":
            raise ValueError(f"relabel(): action {action!r} is not simulated")
        value = cfg.get("separator", ";").join(out.get(s, "") for s in cfg.get("source_labels", []))
        match = re.fullmatch(cfg.get("regex", "(.*)"), value)
        if match:
            replacement = re.sub(r"\$\{?(\d+)\}?", lambda m: match.group(int(m.group(1))) or "",
                                 cfg.get("replacement", "$1"))
            if replacement:
                out[cfg["target_label"]] = replacement
            else:
                out.pop(cfg["target_label"], None)
    return {k: v for k, v in out.items() if not k.startswith("__")}
