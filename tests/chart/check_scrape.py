"""Offline proofs that each ServiceMonitor scrapes its own Service, and only it:
`python -m tests.chart.check_scrape [workdir]`.

For the two seed releases: the ServiceMonitor's selector matches its release's Service labels and
not the other release's; its namespaceSelector is the Service's namespace; port `http` exists on
the Service; relabeling the Service's meta labels yields deployment_variant=<variant> and never a
`variant`/`exported_variant` target label; and the scrape jobs derived for a plain Prometheus
(scrape_config.py, used by the demo) pass `promtool check config`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tools.chart import render
from tests.chart.check_rules import Checks, dump, promtool
from tools.chart.scrape_config import relabel, scrape_job


def objects(release: render.Release) -> tuple[dict, dict]:
    rendered = render.render(release, ("templates/service.yaml", "templates/servicemonitor.yaml"))
    return render.one(rendered, "Service"), render.one(rendered, "ServiceMonitor")


def check_selection(pairs: dict[str, tuple[dict, dict]]) -> str:
    problems = []
    for name, (service, monitor) in pairs.items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        for other, (other_service, _) in pairs.items():
            labels = other_service["metadata"]["labels"]
            selects = all(labels.get(k) == v for k, v in selector.items())
            same_ns = other_service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
            if other == name and not (selects and same_ns):
                problems.append(f"{name}: ServiceMonitor does not select its own Service")
            if other != name and selects and same_ns:
                problems.append(f"{name}: ServiceMonitor also selects the {other} Service")
            if other != name and selects:
                problems.append(f"{name}: selector {selector} matches the {other} Service's labels "
                                "(only the namespace keeps them apart)")
        ports = {p["name"] for p in service["spec"]["ports"]}
        if monitor["spec"]["endpoints"][0]["port"] not in ports:
            problems.append(f"{name}: endpoint port is not one of the Service's {sorted(ports)}")
    if problems:
        raise AssertionError("\n".join(problems))
    return "each selects its own Service only"


def check_relabeling(pairs: dict[str, tuple[dict, dict]]) -> str:
    problems = []
    for name, (service, monitor) in pairs.items():
        job = scrape_job(monitor, service, ["127.0.0.1:8080"])
        target = relabel(job["static_configs"][0]["labels"], job["relabel_configs"])
        variant = service["metadata"]["labels"]["version"]
        if target.get("deployment_variant") != variant:
            problems.append(f"{name}: deployment_variant={target.get('deployment_variant')!r}, "
                            f"expected {variant!r}")
        if {"variant", "exported_variant"} & set(target):
            problems.append(f"{name}: a target label clashes with the proxy's `variant`")
        expected = {"namespace": service["metadata"]["namespace"], "job": service["metadata"]["name"]}
        if any(target.get(k) != v for k, v in expected.items()):
            problems.append(f"{name}: target labels {target} lack {expected}")
    if problems:
        raise AssertionError("\n".join(problems))
    return "deployment_variant from the Service label version, no variant clash"


def check_prometheus_config(pairs: dict[str, tuple[dict, dict]], workdir: Path) -> str:
    jobs = [scrape_job(monitor, service, [f"127.0.0.1:{8080 + i}"])
            for i, (service, monitor) in enumerate(pairs.values())]
    path = dump(workdir / "prometheus.yml", {"global": {"scrape_interval": "30s"},
                                             "scrape_configs": jobs})
    promtool("check", "config", "--syntax-only", str(path))
    return f"{len(jobs)} jobs"


def main(argv: list[str]) -> int:
    workdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="zai-scrape-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    pairs = {}
    for release in (render.PRODUCTION, render.CANARY):
        pair = checks.run(f"render Service and ServiceMonitor ({release.name})", objects, release)
        if pair is None:
            return 1
        pairs[release.name] = pair
    checks.run("ServiceMonitors select their own release's Service", check_selection, pairs)
    checks.run("relabeling gives deployment_variant, never variant/exported_variant",
               check_relabeling, pairs)
    checks.run("derived Prometheus scrape jobs (promtool check config)",
               check_prometheus_config, pairs, workdir)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
