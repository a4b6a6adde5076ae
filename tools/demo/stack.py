"""The whole demo/e2e stack on loopback, built from the chart's render:

    with Stack(workdir, StackSettings(interval="1s", for_factor=60)) as stack:
        stack.pods["canary"][0].url, stack.prometheus.query(...)

Started in order: a Redis (stand-in for the production release's `zai-proxy-redis` Secret target),
the fake Z.AI upstream, the pods of both Deployments (`helm template` of values-production.yaml in
namespace mcp and values-canary.yaml in devpod; see pods.py for what is emulated), then a real
Prometheus configured from the rendered ServiceMonitors and PrometheusRules (see prometheus.py).
`stop()` stops them newest first and leaves no process behind; it runs on `with` exit, and the
demo also calls it from its signal handlers.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tools.chart import render
from tools.demo.pods import IMAGE_DIR, Pod, free_port, pods_of
from tools.demo.processes import Children
from tools.demo.prometheus import Prometheus, scrape_configs, shorten_for
from tools.redis_server import redis_server_binary

ROOT = render.ROOT
RELEASES = {"production": render.PRODUCTION, "canary": render.CANARY}
# A stand-in Z.AI key: the fake accepts any key; this one is in no log because the proxy never
# logs keys, which the e2e test also checks.
DEMO_ZAI_KEY = "zai-demo-key-not-a-real-key"
# Like a short terminationGracePeriodSeconds: SIGTERM, then SIGKILL to what is left.
POD_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class StackSettings:
    interval: str = "1s"        # scrape and rule evaluation interval (the ServiceMonitors say 30s)
    for_factor: float = 60.0    # alerts' `for` divided by this (5m -> 5s)
    fake_scenario: str | None = None


class Stack:
    def __init__(self, workdir: Path, settings: StackSettings = StackSettings()):
        self.dir = Path(workdir)
        self.settings = settings
        self.children = Children()
        self.objects: dict[str, list[dict]] = {}
        self.pods: dict[str, list[Pod]] = {}
        self.prometheus: Prometheus | None = None
        self.fake_url = ""
        self.redis_url = ""

    # -- rendering ---------------------------------------------------------------------------
    def render(self) -> None:
        for variant, release in RELEASES.items():
            self.objects[variant] = render.render(release)

    def _all(self, kind: str) -> list[dict]:
        return [o for objs in self.objects.values() for o in objs if o.get("kind") == kind]

    def rule_specs(self) -> dict[str, dict]:
        """Rule file name -> the rendered PrometheusRule `.spec` with `for` shortened."""
        return {rule["metadata"]["name"]: shorten_for(rule["spec"], self.settings.for_factor)
                for rule in self._all("PrometheusRule")}

    def deployment(self, variant: str) -> dict:
        """The proxy's Deployment (production's release also renders the dashboard's)."""
        return render.one([o for o in self.objects[variant] if o.get("metadata", {}).get(
            "labels", {}).get("app.kubernetes.io/component") != "dashboard"], "Deployment")

    def container_env(self, variant: str) -> dict[str, str]:
        """The first pod's env as started (secrets are the demo's stand-ins)."""
        return dict(self.pods[variant][0].env)

    # -- processes ---------------------------------------------------------------------------
    def _start_redis(self) -> None:
        port = free_port()
        directory = self.dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        self.children.start("redis", [redis_server_binary(), "--port", str(port), "--bind",
                                      "127.0.0.1", "--dir", str(directory), "--save", "",
                                      "--appendonly", "no", "--protected-mode", "yes"],
                            directory / "redis.log")
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        _wait(lambda: _redis_ping(port), 10, "redis-server")

    def _start_fake(self) -> None:
        port_file = self.dir / "fake-zai.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "tools.fake_zai", "--port", "0", "--port-file",
                str(port_file), "--record-limit", "1000"]
        if self.settings.fake_scenario:
            argv += ["--scenario", self.settings.fake_scenario]
        child = self.children.start("fake-zai", argv, self.dir / "fake-zai.log", cwd=ROOT)

        def ready():
            if not child.alive():
                raise RuntimeError(f"fake Z.AI exited:\n{child.tail()}")
            return port_file.exists() and port_file.read_text().strip()
        _wait(ready, 20, "fake Z.AI upstream")
        self.fake_url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def secrets(self) -> dict[tuple[str, str], str]:
        """The Secrets the values files reference (`existingSecret`), with demo contents."""
        return {("zai-proxy-zai", "api-key"): DEMO_ZAI_KEY,
                ("zai-proxy-redis", "storage-uri"): self.redis_url}

    def _start_pods(self) -> list:
        """Start every pod's proxy; returns what `_wait_pods()` waits for."""
        for variant in RELEASES:
            self.pods[variant] = pods_of(self.deployment(variant), self.dir / "pods",
                                         self.fake_url, self.secrets())
        return [(pod, self.children.start(pod.name, pod.argv(), pod.dir / "proxy.log",
                                          env=pod.env, cwd=IMAGE_DIR)) for pod in self.all_pods()]

    @staticmethod
    def _wait_pods(started: list) -> None:
        for pod, child in started:
            def ready(pod=pod, child=child):
                if not child.alive():
                    raise RuntimeError(f"pod {pod.name} exited:\n{child.tail()}")
                try:
                    return requests.get(pod.url + "/readyz", timeout=1).status_code == 200
                except requests.RequestException:
                    return False
            _wait(ready, 60, f"pod {pod.name}")

    def all_pods(self) -> list[Pod]:
        return [p for pods in self.pods.values() for p in pods]

    def _start_prometheus(self) -> None:
        jobs = scrape_configs(self._all("ServiceMonitor"), self._all("Service"), self.all_pods(),
                              self.settings.interval)
        self.prometheus = Prometheus(self.dir / "prometheus", jobs, self.rule_specs(),
                                     self.settings.interval)
        self.prometheus.start(self.children)

    def start(self) -> "Stack":
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self.render()
            self._start_redis()
            self._start_fake()
            started = self._start_pods()
            # Prometheus starts while the proxies boot: its discovery hands static targets to
            # the scrape loop only after about 5 s, which then overlaps the proxies' start.
            self._start_prometheus()
            self._wait_pods(started)
            self.prometheus.wait_targets_up(len(self.all_pods()))
            # One rule evaluation with every target up, so no state from before the first
            # scrape (the `absent()` alerts pending) is left.
            self.prometheus.wait_rules_evaluated(time.time())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # Prometheus first (nothing is recorded about the shutdown itself), then the fake, so
        # requests still in flight end at once instead of keeping the proxies draining (a slow
        # canary answer takes 11 s); then the proxies (SIGTERM, as Kubernetes sends, and SIGKILL
        # after a short grace: requests cut from the fake are retried with backoff, which would
        # keep a proxy draining for 7 s), Redis last because the production pods use it.
        self.children.stop_all(timeout=POD_GRACE_SECONDS, first=("prometheus", "fake-zai"),
                               together=tuple(p.name for p in self.all_pods()))

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _redis_ping(port: int) -> bool:
    import redis
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout}s")
        time.sleep(0.05)
