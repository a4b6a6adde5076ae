"""scripts/kube_lint.py (kube-linter's checks, re-implemented): each check fires on the mistake it
names and stays quiet on a clean object, and the config demands a reason for every exclusion.

The chart's own renders are linted by scripts/check-chart.sh; this proves that a clean result
there means something.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("kube_lint", ROOT / "scripts" / "kube_lint.py")
kube_lint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kube_lint)

CLEAN = [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "ns"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "ns"},
     "spec": {"selector": {"app": "app"}, "ports": [{"port": 80, "targetPort": "http"}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": "ns"},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}},
              "template": {"metadata": {"labels": {"app": "app"}}, "spec": {
                  "serviceAccountName": "app",
                  "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                  "affinity": {"podAntiAffinity": {"preferred": []}},
                  "containers": [{
                      "name": "app", "image": "registry.example/app:1.2.3",
                      "ports": [{"name": "http", "containerPort": 8080}],
                      "env": [{"name": "MODE", "value": "x"}],
                      "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                    "limits": {"cpu": "1", "memory": "128Mi"}},
                      "securityContext": {"readOnlyRootFilesystem": True,
                                          "allowPrivilegeEscalation": False,
                                          "capabilities": {"drop": ["ALL"]}}}]}}}},
]


def _deployment(objects):
    return next(o for o in objects if o["kind"] == "Deployment")


def _container(objects):
    return _deployment(objects)["spec"]["template"]["spec"]["containers"][0]


def _pod(objects):
    return _deployment(objects)["spec"]["template"]["spec"]


MISTAKES = {
    "dangling-service": lambda o: o[1]["spec"].update(selector={"app": "other"}),
    "deprecated-service-account-field": lambda o: _pod(o).update(serviceAccount="legacy"),
    "docker-sock": lambda o: _pod(o).update(volumes=[
        {"name": "d", "hostPath": {"path": "/var/run/docker.sock"}}]),
    "drop-net-raw-capability": lambda o: _container(o)["securityContext"].update(
        capabilities={"drop": ["SYS_ADMIN"]}),
    "env-var-secret": lambda o: _container(o)["env"].append(
        {"name": "DB_SECRET", "value": "hunter2"}),
    "host-ipc": lambda o: _pod(o).update(hostIPC=True),
    "host-network": lambda o: _pod(o).update(hostNetwork=True),
    "host-pid": lambda o: _pod(o).update(hostPID=True),
    "invalid-target-ports": lambda o: o[1]["spec"]["ports"][0].update(targetPort="Metrics_Port"),
    "latest-tag": lambda o: _container(o).update(image="registry.example/app:latest"),
    "mismatching-selector": lambda o: _deployment(o)["spec"]["selector"].update(
        matchLabels={"app": "app", "tier": "x"}),
    "no-anti-affinity": lambda o: _pod(o).pop("affinity"),
    "no-extensions-v1beta": lambda o: _deployment(o).update(apiVersion="extensions/v1beta1"),
    "no-read-only-root-fs": lambda o: _container(o)["securityContext"].pop(
        "readOnlyRootFilesystem"),
    "non-existent-service-account": lambda o: _pod(o).update(serviceAccountName="ghost"),
    "privilege-escalation-container": lambda o: _container(o)["securityContext"].update(
        allowPrivilegeEscalation=True),
    "privileged-container": lambda o: _container(o)["securityContext"].update(privileged=True),
    "run-as-non-root": lambda o: _pod(o).update(securityContext={}),
    "sensitive-host-mounts": lambda o: _pod(o).update(volumes=[
        {"name": "etc", "hostPath": {"path": "/etc/"}}]),
    "ssh-port": lambda o: _container(o)["ports"].append({"containerPort": 22}),
    "unsafe-sysctls": lambda o: _pod(o)["securityContext"].update(
        sysctls=[{"name": "net.core.somaxconn", "value": "1024"}]),
    "unset-cpu-requirements": lambda o: _container(o)["resources"]["limits"].pop("cpu"),
    "unset-memory-requirements": lambda o: _container(o)["resources"]["requests"].pop("memory"),
    "non-isolated-pod": lambda o: None,   # CLEAN has no NetworkPolicy
    "read-secret-from-env-var": lambda o: _container(o)["env"].append(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
}


def test_every_check_has_a_mistake_here():
    assert set(MISTAKES) == set(kube_lint.CHECKS)


def test_the_clean_objects_pass_every_default_check():
    assert kube_lint.lint(CLEAN, {n: kube_lint.CHECKS[n] for n in kube_lint.DEFAULT}) == []


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_check_reports_its_mistake_and_only_it(name):
    objects = copy.deepcopy(CLEAN)
    MISTAKES[name](objects)
    enabled = {n: kube_lint.CHECKS[n] for n in kube_lint.DEFAULT | {name}}
    findings = kube_lint.lint(objects, enabled)
    assert findings and all(f": {name}: " in f for f in findings), findings


def test_the_ignore_annotation_needs_a_reason():
    objects = copy.deepcopy(CLEAN)
    MISTAKES["latest-tag"](objects)
    checks = {"latest-tag": kube_lint.CHECKS["latest-tag"]}
    annotations = _deployment(objects)["metadata"].setdefault("annotations", {})
    annotations["ignore-check.kube-linter.io/latest-tag"] = ""
    assert kube_lint.lint(objects, checks)
    annotations["ignore-check.kube-linter.io/latest-tag"] = "pinned by digest in the overlay"
    assert kube_lint.lint(objects, checks) == []


def test_latest_tag_accepts_tags_and_digests_only():
    check = kube_lint.CHECKS["latest-tag"]
    for image, bad in (("app", True), ("registry.example/app", True), ("app:latest", True),
                       ("registry.example:5000/app", True), ("app:1.0", False),
                       ("registry.example:5000/app:1.0", False),
                       ("app@sha256:" + "0" * 64, False)):
        pod = {"kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": image}]}}
        assert bool(check(pod, [pod])) is bad, image


def test_an_exclusion_without_a_reason_is_refused(tmp_path):
    config = tmp_path / "kl.yaml"
    config.write_text("checks:\n  exclude:\n    - latest-tag\n")
    with pytest.raises(kube_lint.ConfigError, match="latest-tag"):
        kube_lint.load_config(config)
    config.write_text("checks:\n  exclude:\n    - latest-tag  # short\n")
    with pytest.raises(kube_lint.ConfigError):
        kube_lint.load_config(config)
    config.write_text("checks:\n  exclude:\n    - latest-tag  # images are pinned by digest "
                      "in the deploy overlay\n")
    assert "latest-tag" not in kube_lint.load_config(config)


def test_the_repo_config_loads_and_keeps_cpu_requests_required():
    checks = kube_lint.load_config(ROOT / ".kube-linter.yaml")
    text = (ROOT / ".kube-linter.yaml").read_text()
    excluded = yaml.safe_load(text)["checks"]["exclude"]
    assert set(checks) == (kube_lint.DEFAULT - set(excluded)) | {"cpu-request"}
    objects = copy.deepcopy(CLEAN)
    _container(objects)["resources"]["requests"].pop("cpu")
    assert kube_lint.lint(objects, checks) == [
        "ns/Deployment/app: cpu-request: container app has no cpu request"]
    _container(objects)["resources"] = {"requests": {"cpu": "1", "memory": "1Mi"},
                                        "limits": {"memory": "1Mi"}}   # no CPU limit: fine
    assert kube_lint.lint(objects, checks) == []


def test_main_reports_findings_and_exit_status(tmp_path, capsys):
    bad = copy.deepcopy(CLEAN)
    MISTAKES["privileged-container"](bad)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump_all(bad))
    (tmp_path / "good.yaml").write_text(yaml.safe_dump_all(CLEAN))
    config = ROOT / ".kube-linter.yaml"
    assert kube_lint.main(["--config", str(config), str(tmp_path / "good.yaml")]) == 0
    assert kube_lint.main(["--config", str(config), str(tmp_path / "good.yaml"),
                           str(tmp_path / "bad.yaml")]) == 1
    out = capsys.readouterr().out
    assert "bad.yaml: ns/Deployment/app: privileged-container: container app is privileged" in out
