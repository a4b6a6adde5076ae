"""The chart's `helm test` pod, run for real: its script (taken from the rendered Pod, with the
Pod's own env) must pass against a running proxy of the right variant and fail otherwise.

This is what `helm test` does in a cluster, minus the cluster: the script runs with this
machine's Python against the proxy on loopback instead of the release's Service.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

from tools.chart import render

pytestmark = pytest.mark.needs_tools     # helm renders the test Pod

TEST_POD = "templates/tests/test-readyz.yaml"
# The seed's two installs: release name, namespace, values file.
PRODUCTION = ("zai-proxy", "mcp", "values/values-production.yaml")
CANARY = ("zai-proxy-canary", "devpod", "values/values-canary.yaml")


@functools.cache
def helm_test_pod(release):
    """The test Pod as `helm template` renders it for one of the two releases (once per run;
    nothing changes it)."""
    name, namespace, values = release
    pods = render.render(render.Release(name, name, namespace, (values,)), (TEST_POD,))
    assert len(pods) == 1 and pods[0]["kind"] == "Pod"
    return pods[0]


def run_pod_script(pod, base_url, **overrides):
    """Run the Pod's container command with its env, pointing BASE_URL at `base_url`."""
    container = pod["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    env.update(BASE_URL=base_url, PATH=os.environ["PATH"], **overrides)
    command = container["command"]
    assert command[:2] == ["python3", "-c"]
    return subprocess.run([sys.executable, "-c", command[2]], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("release,variant", [(PRODUCTION, "production"), (CANARY, "canary")])
def test_helm_test_passes_against_its_own_variant(start_proxy, release, variant):
    pod = helm_test_pod(release)
    proxy = start_proxy(DEPLOYMENT_VARIANT=variant, RATE_LIMIT_ENABLED="false")
    result = run_pod_script(pod, proxy.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok {proxy.url}/readyz answered 200" in result.stdout
    assert f"ok {proxy.url}/metrics exports zai_proxy_build_info with variant={variant}" in result.stdout


def test_helm_test_fails_against_the_other_variant(start_proxy):
    pod = helm_test_pod(CANARY)
    proxy = start_proxy(DEPLOYMENT_VARIANT="production", RATE_LIMIT_ENABLED="false")
    result = run_pod_script(pod, proxy.url)
    assert result.returncode == 1
    assert "FAIL" in result.stderr and "variant=canary" in result.stderr


def test_helm_test_fails_when_nothing_answers():
    from tools.proxy_process import free_port
    pod = helm_test_pod(PRODUCTION)
    result = run_pod_script(pod, f"http://127.0.0.1:{free_port()}", READY_TIMEOUT_SECONDS="0")
    assert result.returncode == 1
    assert "readyz never answered 200" in result.stderr


def test_helm_test_makes_no_upstream_call(start_proxy, fake_zai):
    pod = helm_test_pod(PRODUCTION)
    proxy = start_proxy(DEPLOYMENT_VARIANT="production", RATE_LIMIT_ENABLED="false")
    fake_zai.clear()
    assert run_pod_script(pod, proxy.url).returncode == 0
    assert fake_zai.requests == []
