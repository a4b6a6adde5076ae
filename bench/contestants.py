"""The fake upstream and the five contestants: how each is started, where it listens, what it costs.

    direct      the fake Z.AI itself (the floor)
    production  zai-proxy with values/values-production.yaml's settings (token counting off)
    baseline    production's settings, run from another git revision (`--baseline REV`), so a
                change to the request path is measured against its predecessor in one run
    canary      zai-proxy with values/values-canary.yaml's settings (token counting on)
    litellm     the LiteLLM proxy (pinned in bench/requirements-litellm.txt), pass-through
    nginx       Debian's nginx, proxy_pass + proxy_buffering off (not LLM-aware)

Every proxy runs ONE worker process, pinned to the contestant core; the fake and the load
generator share the other core (see `Layout`).
"""

from __future__ import annotations

import dataclasses
import io
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from .procs import ROOT, Tree, free_port, wait_http

PYTHON = sys.executable
BENCH_VENV = ROOT / ".venv-bench"
UPSTREAM_KEY = "bench-upstream-key-not-a-secret"
CHAT = "/chat/completions"
NAMES = ("direct", "production", "canary", "litellm", "nginx")
PROXIES = ("production", "baseline", "canary", "litellm", "nginx")
ORDER = ("direct", "production", "baseline", "canary", "litellm", "nginx")
LABELS = {"direct": "direct (floor)", "production": "zai-proxy production",
          "baseline": "zai-proxy production, baseline revision",
          "canary": "zai-proxy canary", "litellm": "LiteLLM proxy", "nginx": "nginx proxy_pass"}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which CPUs run what. With 2 cores: the contestant alone on one (like a pod with a 1-CPU
    limit), the fake upstream and the load generator on the other, for every contestant alike.
    None disables pinning (1 core, or no taskset)."""
    contestant: str | None
    environment: str | None

    @classmethod
    def detect(cls) -> "Layout":
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls(str(cpus[-1]), ",".join(str(c) for c in cpus[:-1]))


@dataclasses.dataclass
class Running:
    name: str
    url: str                    # the chat completions URL a client calls
    headers: dict
    tree: Tree | None           # None for direct: nothing between client and upstream
    settings: dict


def base_env() -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env["TIKTOKEN_CACHE_DIR"] = os.environ.get("TIKTOKEN_CACHE_DIR",
                                               str(ROOT / ".cache" / "tiktoken"))
    return env


def start_fake(work: Path, layout: Layout) -> tuple[Tree, str]:
    port = free_port()
    tree = Tree("fake", [PYTHON, "-m", "tools.fake_zai", "--port", str(port), "--record-limit",
                         "0"], env=base_env(), cwd=ROOT, log_dir=work, cpus=layout.environment)
    origin = f"http://127.0.0.1:{port}"
    wait_http(origin + "/_fake/stats", tree, 30)
    return tree, origin


def values_settings(variant: str) -> dict:
    """The settings a values file gives the proxy that matter here."""
    values = yaml.safe_load((ROOT / "values" / f"values-{variant}.yaml").read_text())
    return {
        "DEPLOYMENT_VARIANT": values.get("variant", variant),
        "TOKEN_COUNTING_ENABLED": str(bool(values.get("tokenCounting", {}).get("enabled"))).lower(),
        "LOG_LEVEL": values.get("config", {}).get("logLevel", "info"),
        "values_max_workers": values.get("config", {}).get("maxWorkers"),
    }


def checkout(revision: str, work: Path) -> Path:
    """The tree of `revision` (any git revision of this repository) extracted under `work`,
    without touching the repository's worktrees: the baseline contestant runs from it."""
    target = work / "baseline"
    if not target.exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return target


def start_zai_proxy(variant: str, origin: str, work: Path, layout: Layout,
                    max_workers: int, root: Path = ROOT, name: str | None = None) -> Running:
    port = free_port()
    settings = values_settings(variant)
    values_max = settings.pop("values_max_workers")
    env = base_env() | settings | {
        "PORT": str(port),
        "ZAI_BASE_URL": origin,
        "ZAI_API_KEY": UPSTREAM_KEY,
        "WEB_CONCURRENCY": "1",
        # The values' cap (MAX_WORKERS=20/10) would answer 503 past 20 requests in flight: the
        # benchmark raises it to the scenario's concurrency to measure the relay, not the shedding.
        "MAX_WORKERS": str(max_workers),
        # The adaptive limiter paces to Z.AI's budget (tens of req/s): off, we measure the proxy.
        "RATE_LIMIT_ENABLED": "false",
        "RATE_LIMIT_STATE_FILE": "",
        # Stopping between scenarios should not wait for GRACEFUL_TIMEOUT's 600 s default.
        "GRACEFUL_TIMEOUT": "5s",
        "PROMETHEUS_MULTIPROC_DIR": str(work / f"{variant}-{port}-metrics"),
    }
    tree = Tree(f"{name or variant}-{port}", [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                              "app:create_app()"], env=env, cwd=root / "image",
                log_dir=work, cpus=layout.contestant)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/readyz", tree, 30)
    shown = {k: v for k, v in env.items() if k in (
        "DEPLOYMENT_VARIANT", "TOKEN_COUNTING_ENABLED", "LOG_LEVEL", "WEB_CONCURRENCY",
        "MAX_WORKERS", "RATE_LIMIT_ENABLED")}
    shown["values_max_workers"] = values_max
    return Running(name or variant, base + "/v1" + CHAT, {}, tree, shown)


def litellm_version() -> str | None:
    try:
        for line in (ROOT / "bench" / "requirements-litellm.txt").read_text().splitlines():
            if line.lower().startswith("litellm=="):
                return line.split("==", 1)[1].strip()
    except OSError:
        pass
    return None


def start_litellm(origin: str, work: Path, layout: Layout) -> Running:
    exe = BENCH_VENV / "bin" / "litellm"
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: run `make bench` (it installs .venv-bench)")
    port = free_port()
    master_key = "sk-bench-" + secrets.token_hex(16)   # per run, never written anywhere
    env = base_env() | {
        "BENCH_OPENAI_BASE": origin + "/api/paas/v4",
        "BENCH_UPSTREAM_KEY": UPSTREAM_KEY,
        "LITELLM_MASTER_KEY": master_key,
        # No network: the cost map shipped in the wheel, no telemetry.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "HOME": str(work),
    }
    tree = Tree(f"litellm-{port}", [str(exe), "--config", str(ROOT / "bench" /
                                                               "litellm_config.yaml"),
                                    "--host", "127.0.0.1", "--port", str(port),
                                    "--num_workers", "1"],
                env=env, cwd=work, log_dir=work, cpus=layout.contestant)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health/liveliness", tree, 120)
    return Running("litellm", base + "/v1" + CHAT, {"Authorization": f"Bearer {master_key}"},
                   tree, {"version": litellm_version(), "num_workers": 1})


def start_nginx(origin: str, work: Path, layout: Layout) -> Running:
    port = free_port()
    prefix = work / f"nginx-{port}"
    prefix.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "bench" / "nginx.conf.tmpl").read_text()
    conf = (template.replace("@PREFIX@", str(prefix)).replace("@PORT@", str(port))
            .replace("@UPSTREAM@", origin.removeprefix("http://")))
    (prefix / "nginx.conf").write_text(conf)
    nginx = "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else "nginx"
    tree = Tree(f"nginx-{port}", [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                  "-e", str(prefix / "error.log")],
                env=base_env(), cwd=prefix, log_dir=work, cpus=layout.contestant)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/_fake/stats", tree, 20)
    return Running("nginx", base + "/api/paas/v4" + CHAT, {"Authorization":
                                                           f"Bearer {UPSTREAM_KEY}"},
                   tree, {"worker_processes": 1})


def direct(origin: str) -> Running:
    return Running("direct", origin + "/api/paas/v4" + CHAT,
                   {"Authorization": f"Bearer {UPSTREAM_KEY}"}, None, {})


def start(name: str, origin: str, work: Path, layout: Layout, max_workers: int,
          baseline: str | None = None) -> Running:
    if name == "direct":
        return direct(origin)
    if name in ("production", "canary"):
        return start_zai_proxy(name, origin, work, layout, max_workers)
    if name == "baseline":
        if not baseline:
            raise ValueError("the baseline contestant needs --baseline REV")
        running = start_zai_proxy("production", origin, work, layout, max_workers,
                                  root=checkout(baseline, work), name="baseline")
        running.settings["revision"] = baseline
        return running
    if name == "litellm":
        return start_litellm(origin, work, layout)
    if name == "nginx":
        return start_nginx(origin, work, layout)
    raise ValueError(name)
