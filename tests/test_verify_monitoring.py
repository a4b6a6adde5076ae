"""scripts/verify-monitoring.sh and the runbooks' kubectl commands, against what the chart installs.

There is no cluster here, so `kubectl` is tests/kubectl_standin.py: it answers read-only `get`s
from `helm template` of both values files (the objects a correct install creates), in kubectl's
formats and with its errors. A broken install is the same render with one object changed.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.chart import render

pytestmark = pytest.mark.needs_tools     # helm renders both releases

ROOT = render.ROOT
SCRIPT = ROOT / "scripts" / "verify-monitoring.sh"
NAMESPACES = ("mcp", "devpod", "monitoring")
CHECKS = {
    "namespace": "namespace monitoring exists",
    "sm-production": "ServiceMonitor monitoring/zai-proxy-production ",
    "sm-canary": "ServiceMonitor monitoring/zai-proxy-canary ",
    "svc-production": "Service mcp/zai-proxy ",
    "svc-canary": "Service devpod/zai-proxy-canary ",
    "rule-canary": "PrometheusRule monitoring/zai-proxy-canary-alerts:",
    "rule-production": "PrometheusRule monitoring/zai-proxy-production-alerts:",
    "configmap": "ConfigMap monitoring/zai-proxy-grafana-dashboard ",
    "json": "dashboard JSON in zai-proxy-grafana-dashboard is valid",
    "panels": "dashboard has the ten panels",
}


@pytest.fixture(scope="module")
def installed() -> list[dict]:
    """Both releases as `helm install` with the values files creates them."""
    return render.render(render.PRODUCTION) + render.render(render.CANARY)


class Cluster:
    """A directory with the objects, and `kubectl` on PATH answering from them."""

    def __init__(self, directory: Path, objects: list[dict], namespaces=NAMESPACES):
        self.dir = directory
        (directory / "bin").mkdir(parents=True, exist_ok=True)
        (directory / "objects.json").write_text(json.dumps(objects))
        kubectl = directory / "bin" / "kubectl"
        kubectl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT}/tests/kubectl_standin.py" "$@"\n')
        kubectl.chmod(0o755)
        self.log = directory / "kubectl.log"
        self.env = dict(os.environ, PATH=f"{directory / 'bin'}:{os.environ['PATH']}",
                        KUBECTL_STANDIN_OBJECTS=str(directory / "objects.json"),
                        KUBECTL_STANDIN_NAMESPACES=" ".join(namespaces),
                        KUBECTL_STANDIN_LOG=str(self.log))
        self.env.pop("KUBECTL", None)

    def verify(self, *args: str, **env) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                              env={**self.env, **env}, timeout=120)

    def shell(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                              text=True, env=self.env, timeout=60)

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def results(out: str) -> dict[str, str]:
    """Check key -> PASS/FAIL, from the script's one line per check."""
    found = {}
    for line in out.splitlines():
        status, _, name = line.partition("  ")
        if status in ("PASS", "FAIL"):
            keys = [k for k, prefix in CHECKS.items() if name.startswith(prefix)]
            assert len(keys) == 1, line
            found[keys[0]] = status
    return found


def find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def dashboard_of(configmap: dict) -> dict:
    return json.loads(next(iter(configmap["data"].values())))


def test_a_correct_install_passes_every_check(tmp_path, installed):
    cluster = Cluster(tmp_path, installed)
    out = cluster.verify()
    assert out.returncode == 0, out.stdout + out.stderr
    assert results(out.stdout) == {key: "PASS" for key in CHECKS}
    assert out.stdout.rstrip().endswith("verify-monitoring: 10 passed, 0 failed")
    # Read-only: every kubectl call is a `get`.
    assert cluster.calls() and all(call[0] == "get" for call in cluster.calls())


# Each broken install: what changes, the checks that must fail, and what their reason must say.
def drop_relabeling(objects):
    find(objects, "ServiceMonitor", "zai-proxy-production")["spec"]["endpoints"][0]["relabelings"] = []


def relabel_into_variant(objects):
    relabel = find(objects, "ServiceMonitor", "zai-proxy-canary")["spec"]["endpoints"][0]["relabelings"][0]
    relabel["targetLabel"] = "variant"


def wrong_selector(objects):
    find(objects, "ServiceMonitor", "zai-proxy-canary")["spec"]["selector"]["matchLabels"]["version"] = "production"


def wrong_namespace(objects):
    find(objects, "ServiceMonitor", "zai-proxy-canary")["spec"]["namespaceSelector"]["matchNames"] = ["mcp"]


def drop_alert(objects):
    rule = find(objects, "PrometheusRule", "zai-proxy-canary-alerts")
    group = next(g for g in rule["spec"]["groups"] if g["name"] == "zai_proxy_canary_alerts")
    group["rules"] = [r for r in group["rules"] if r.get("alert") != "ZaiProxyCanaryHighLatency"]


def invalid_json(objects):
    configmap = find(objects, "ConfigMap", "zai-proxy-grafana-dashboard")
    key = next(iter(configmap["data"]))
    configmap["data"][key] = configmap["data"][key][:-40]   # cut off: a truncated apply


def drop_panel(objects):
    configmap = find(objects, "ConfigMap", "zai-proxy-grafana-dashboard")
    dashboard = dashboard_of(configmap)
    dashboard["panels"] = [p for p in dashboard["panels"] if p["title"] != "Token Counting Duration"]
    configmap["data"] = {next(iter(configmap["data"])): json.dumps(dashboard)}


def no_sidecar_label(objects):
    del find(objects, "ConfigMap", "zai-proxy-grafana-dashboard")["metadata"]["labels"]["grafana_dashboard"]


BROKEN = {
    "missing relabeling": (drop_relabeling, {"sm-production"},
                           "no relabeling of __meta_kubernetes_service_label_version into deployment_variant"),
    "relabeling into variant": (relabel_into_variant, {"sm-canary"},
                                "a relabeling targets `variant`"),
    "wrong selector": (wrong_selector, {"sm-canary", "svc-canary"},
                       "selector version=production, expected version=canary"),
    "wrong namespaceSelector": (wrong_namespace, {"sm-canary"},
                                'namespaceSelector.matchNames is ["mcp"], expected ["devpod"]'),
    "missing alert": (drop_alert, {"rule-canary"},
                      "alert ZaiProxyCanaryHighLatency missing from group zai_proxy_canary_alerts"),
    "invalid dashboard JSON": (invalid_json, {"json", "panels"}, "not valid JSON"),
    "missing panel": (drop_panel, {"panels"},
                      'panel 9 is "Rate Limit Adjustments|timeseries", expected "Token Counting Duration|timeseries"'),
    "no sidecar label": (no_sidecar_label, {"configmap"},
                         "label grafana_dashboard=(none), the Grafana sidecar loads grafana_dashboard=1"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_install_fails_naming_the_broken_check(tmp_path, installed, case):
    breaks, failing, reason = BROKEN[case]
    objects = copy.deepcopy(installed)
    breaks(objects)
    out = Cluster(tmp_path, objects).verify()
    assert out.returncode == 1, out.stdout + out.stderr
    found = results(out.stdout)
    assert {k for k, status in found.items() if status == "FAIL"} == failing, out.stdout
    assert len(found) == len(CHECKS)   # every check still ran
    assert reason in out.stdout, out.stdout
    assert f"{len(CHECKS) - len(failing)} passed, {len(failing)} failed" in out.stdout


def test_a_missing_monitoring_namespace_fails_with_kubectls_error(tmp_path, installed):
    objects = [o for o in installed if o["metadata"].get("namespace") != "monitoring"]
    out = Cluster(tmp_path, objects, namespaces=("mcp", "devpod")).verify()
    assert out.returncode == 1
    assert results(out.stdout)["namespace"] == "FAIL"
    assert 'kubectl: Error from server (NotFound): servicemonitors.monitoring.coreos.com ' \
           '"zai-proxy-production" not found' in out.stdout
    assert 'Error from server (NotFound): namespaces "monitoring" not found' in out.stdout


def test_namespaces_and_release_names_are_arguments(tmp_path):
    monitoring = ("serviceMonitor.namespace=observability", "prometheusRule.namespace=observability",
                  "grafanaDashboard.namespace=observability")
    objects = (render.render(render.Release("p", "zp", "prod-a", render.PRODUCTION.values, monitoring))
               + render.render(render.Release("c", "zp-canary", "canary-b", render.CANARY.values,
                                              monitoring)))
    cluster = Cluster(tmp_path, objects, namespaces=("prod-a", "canary-b", "observability"))
    out = cluster.verify("--monitoring-namespace", "observability", "--production-namespace=prod-a",
                         "--canary-namespace", "canary-b", "--production-release", "zp",
                         "--canary-release", "zp-canary")
    assert out.returncode == 0, out.stdout + out.stderr
    # The chart's names from those releases: <release>-zai-proxy, then -<variant>.
    assert "PASS  ServiceMonitor observability/zp-zai-proxy-production selects app=zp-zai-proxy," \
           "version=production in prod-a" in out.stdout
    assert "PASS  PrometheusRule observability/zp-canary-zai-proxy-canary-alerts:" in out.stdout
    assert cluster.verify().returncode == 1   # the seed's defaults do not fit this install


def test_bad_arguments_and_missing_tools_exit_2(tmp_path, installed):
    cluster = Cluster(tmp_path, installed)
    out = cluster.verify("--canary-namespace")
    assert (out.returncode, out.stderr.strip()) == (
        2, "verify-monitoring: --canary-namespace needs a value (see --help)")
    out = cluster.verify("--canary")
    assert out.returncode == 2 and "unknown option: --canary" in out.stderr
    out = cluster.verify(KUBECTL=str(tmp_path / "no-kubectl"))
    assert out.returncode == 2 and "kubectl not found" in out.stderr
    out = cluster.verify("--help")
    assert out.returncode == 0 and "--monitoring-namespace NS" in out.stdout
    assert "set -uo" not in out.stdout


# -- the runbooks' troubleshooting and manual-testing commands ------------------------------------
# Verbatim from the monitoring setup (../shared/seed/monitoring-setup.txt) and quoted in the
# runbooks; each must work against what the chart installs with the seed's names.
SEED_COMMANDS = {
    "kubectl port-forward -n mcp deployment/zai-proxy 8080:8080": "Forwarding from 127.0.0.1:8080 -> 8080",
    "kubectl port-forward -n devpod deployment/zai-proxy-canary 8080:8080": "Forwarding from 127.0.0.1:8080 -> 8080",
    "kubectl get servicemonitor -n monitoring | grep zai-proxy": "zai-proxy-canary   1d\nzai-proxy-production   1d",
    "kubectl get service -n mcp zai-proxy -o jsonpath='{.metadata.labels}'": '"app":"zai-proxy"',
    "kubectl get service -n devpod zai-proxy-canary -o jsonpath='{.metadata.labels}'": '"version":"canary"',
    "kubectl get configmap -n monitoring zai-proxy-grafana-dashboard": "zai-proxy-grafana-dashboard   1d",
    "kubectl get configmap -n monitoring zai-proxy-grafana-dashboard -o jsonpath='{.data.*}' | jq .":
        '"uid": "zai-proxy-prod-vs-canary"',
    "kubectl get prometheusrule -n monitoring zai-proxy-canary-alerts": "zai-proxy-canary-alerts   1d",
}


# The monitoring setup document this project was created from, kept beside the tests so that a
# clone checks against it on any machine; where the shared original sits next to the project (or
# to the folder of its worktrees), the copy must equal it.
SEED_COPY = ROOT / "tests" / "chart" / "seed-monitoring-setup.txt"


def seed_text() -> str:
    return SEED_COPY.read_text()


def test_the_seed_copy_is_the_shared_original_where_there_is_one():
    originals = [base / "shared" / "seed" / "monitoring-setup.txt"
                 for base in (ROOT.parent, ROOT.parent.parent)]
    for original in originals:
        if original.exists():
            assert original.read_text() == seed_text()
    assert "zai-proxy-grafana-dashboard" in seed_text()


def test_the_commands_are_the_seeds_and_the_runbooks_quote_them():
    seed = seed_text()
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    for command in SEED_COMMANDS:
        assert command in seed, command
        assert command in runbooks, command
    rules_query = ("curl http://localhost:9090/api/v1/rules | jq '.data.groups[] | "
                   "select(.name==\"zai_proxy_canary_alerts\")'")
    assert rules_query in seed and rules_query in runbooks


def test_the_readme_troubleshooting_section_lists_the_script():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    assert "scripts/verify-monitoring.sh" in section
    assert "docs/runbooks.md#troubleshooting-the-monitoring-setup" in section


@pytest.mark.parametrize("command", list(SEED_COMMANDS))
def test_a_seed_command_works_against_the_chart(tmp_path, installed, command):
    out = Cluster(tmp_path, installed).shell(command)
    assert out.returncode == 0, out.stderr
    assert SEED_COMMANDS[command] in out.stdout, out.stdout


def test_port_8080_is_where_the_proxy_listens(installed):
    # The port-forwards above reach the proxy only if the container listens on 8080.
    for name in ("zai-proxy", "zai-proxy-canary"):
        container = find(installed, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "PORT", "value": "8080"} in container["env"]
        assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
