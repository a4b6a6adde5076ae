"""A rendered Deployment turned into local "pods": the proxy's env exactly as the chart renders it,
with only what Kubernetes itself would supply replaced.

What is emulated, and how (nothing else is changed; a setting the chart renders is never retyped):
- `env[].value`: kept verbatim, except `PORT` (every pod shares 127.0.0.1 here, so each listens on
  its own free port; the Service's `targetPort: http` is that port), `BIND_HOST` (127.0.0.1: a
  pod's address is this machine's loopback) and `ZAI_BASE_URL` (the fake Z.AI upstream instead of
  https://api.z.ai).
- `env[].valueFrom.secretKeyRef`: the value of that Secret key from `secrets`, the demo's stand-in
  Secrets (a demo Z.AI key, the demo Redis URL). A Secret the demo does not know is an error, so
  a chart change that adds one is noticed here instead of silently running without it.
- `env[].valueFrom.fieldRef` `metadata.name` / `metadata.namespace`: the pod's name / namespace.
- `volumeMounts`: each mount path becomes a directory of the pod (`<pod dir>/<volume name>`), and
  an env value that is a path under a mount path is moved there (e.g. ZAI_API_KEY_FILE under the
  projected Secret volume, RATE_LIMIT_STATE_FILE under the /tmp emptyDir). Projected/secret
  volumes get their items written from `secrets`.
- The image's own env: TIKTOKEN_CACHE_DIR (baked at /opt/tiktoken in the image) is the repo's
  `.cache/tiktoken` (`make tiktoken-cache`), and PROMETHEUS_MULTIPROC_DIR, which the image sets
  under /tmp, is put under the pod's /tmp emptyDir as in the container.
- `replicas`: that many pods, named like a ReplicaSet's (`<deployment>-<hash>-<suffix>`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tools.proxy_process import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "image"
TIKTOKEN_CACHE = ROOT / ".cache" / "tiktoken"
# The image's multiprocess directory (its Dockerfile's ENV), inside the pod's /tmp emptyDir.
IMAGE_MULTIPROC_DIR = "/tmp/zai-proxy-metrics"


@dataclass
class Pod:
    name: str
    namespace: str
    deployment: str
    labels: dict[str, str]
    port: int
    dir: Path
    env: dict[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        # The image's CMD: `gunicorn -c gunicorn.conf.py 'app:create_app()'` in the app directory.
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]


class UnknownSecret(KeyError):
    pass


def container(deployment: dict, name: str | None = None) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if name is None:
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def _secret(secrets: dict[tuple[str, str], str], name: str, key: str) -> str:
    try:
        return secrets[(name, key)]
    except KeyError:
        raise UnknownSecret(f"the demo has no stand-in for Secret {name!r} key {key!r}; "
                            "add one to the stack's secrets") from None


def _mounts(deployment: dict, ctr: dict, pod_dir: Path) -> dict[str, Path]:
    """mountPath -> local directory, longest first (so nested mounts win)."""
    out = {m["mountPath"]: pod_dir / m["name"] for m in ctr.get("volumeMounts", [])}
    return dict(sorted(out.items(), key=lambda kv: -len(kv[0])))


def _relocate(value: str, mounts: dict[str, Path]) -> str:
    for mount, local in mounts.items():
        if value == mount or value.startswith(mount.rstrip("/") + "/"):
            return str(local / os.path.relpath(value, mount))
    return value


def _write_volumes(deployment: dict, ctr: dict, pod_dir: Path,
                   secrets: dict[tuple[str, str], str]) -> None:
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
    for mount in ctr.get("volumeMounts", []):
        local = pod_dir / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        volume = volumes.get(mount["name"], {})
        projected = volume.get("projected", {}).get("sources", [])
        sources = [s["secret"] for s in projected if "secret" in s]
        if "secret" in volume:
            sources.append({"name": volume["secret"]["secretName"], **volume["secret"]})
        for source in sources:
            for item in source.get("items", []):
                path = local / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_secret(secrets, source["name"], item["key"]))
                path.chmod(0o440)


def pods_of(deployment: dict, base_dir: Path, upstream_url: str,
            secrets: dict[tuple[str, str], str], replicas: int | None = None) -> list[Pod]:
    """The local pods of `deployment` (a rendered object), with their env and directories."""
    meta = deployment["metadata"]
    template = deployment["spec"]["template"]
    ctr = container(deployment)
    count = deployment["spec"].get("replicas", 1) if replicas is None else replicas
    # A ReplicaSet-like hash of the pod template, so names look like a cluster's.
    template_hash = hashlib.sha256(repr(template).encode()).hexdigest()[:9]
    pods = []
    for index in range(count):
        suffix = hashlib.sha256(str(index).encode()).hexdigest()[:5]
        name = f"{meta['name']}-{template_hash}-{suffix}"
        pod_dir = base_dir / name
        if pod_dir.exists():
            shutil.rmtree(pod_dir)
        pod_dir.mkdir(parents=True)
        port = free_port()
        mounts = _mounts(deployment, ctr, pod_dir)
        env: dict[str, str] = {}
        for item in ctr.get("env", []):
            key = item["name"]
            if "value" in item:
                env[key] = _relocate(str(item["value"]), mounts)
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[key] = _secret(secrets, ref["name"], ref["key"])
            elif "fieldRef" in item.get("valueFrom", {}):
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                env[key] = {"metadata.name": name, "metadata.namespace": meta["namespace"]}[path]
            else:
                raise ValueError(f"env {key}: unsupported source {item.get('valueFrom')}")
        _write_volumes(deployment, ctr, pod_dir, secrets)
        env["PORT"] = str(port)
        env["BIND_HOST"] = "127.0.0.1"
        env["ZAI_BASE_URL"] = upstream_url
        multiproc = _relocate(IMAGE_MULTIPROC_DIR, mounts)
        if multiproc == IMAGE_MULTIPROC_DIR:  # no /tmp volume: still never shared between pods
            multiproc = str(pod_dir / "tmp" / "zai-proxy-metrics")
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", multiproc)
        env.setdefault("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        pods.append(Pod(name, meta["namespace"], meta["name"], dict(template["metadata"]["labels"]),
                        port, pod_dir, env))
    return pods
