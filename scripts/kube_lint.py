#!/usr/bin/env python3
"""kube-linter's built-in checks over rendered manifests, re-implemented in Python.

Why this exists: issue 7 asks for kube-linter (Go module golang.stackrox.io/kube-linter), but the
Go module proxy this project can reach refuses that module (403, "not available"), so it cannot
be built here or in CI. This script runs the same checks, by the same names and meaning as
kube-linter's documentation (docs/generated/checks.md), over `helm template` output, and reads
`.kube-linter.yaml` in kube-linter's own format, so the real tool can replace it without touching
the config. kube-score (scripts/check-chart.sh) still runs beside it.

    python scripts/kube_lint.py [--config .kube-linter.yaml] RENDER.yaml...

Config: `checks.include` adds non-default checks, `checks.exclude` removes checks; every excluded
check must carry its reason as a comment on its line (`- name  # why ...`). Objects may also
carry kube-linter's per-object annotation `ignore-check.kube-linter.io/<check>: "<reason>"`.
Exit status 1 when any check reports, 2 for a bad config.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod",
             "ReplicationController"}
IGNORE_PREFIX = "ignore-check.kube-linter.io/"
SENSITIVE_HOST_DIRS = re.compile(r"^/$|^/boot$|^/dev$|^/etc$|^/lib$|^/proc$|^/sys$|^/usr$")
UNSAFE_SYSCTLS = ("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.", "net.")
LATEST_TAG = (re.compile(r".*:(latest)$"), re.compile(r"^[^:]*$"), re.compile(r"^(.*/[^:]+)$"))


# -- object helpers ----------------------------------------------------------------------------
def pod_template(obj: dict) -> dict | None:
    """(metadata+spec) of the pods an object runs, or None for objects that run none."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return obj
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    if kind in POD_KINDS:
        return spec.get("template")
    return None


def pod_spec(obj: dict) -> dict | None:
    template = pod_template(obj)
    return None if template is None else (template.get("spec") or {})


def containers(obj: dict) -> list[dict]:
    spec = pod_spec(obj) or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def selects(selector: dict | None, labels: dict) -> bool:
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def _quantity_set(value) -> bool:
    if value is None:
        return False
    text = str(value).strip()
    return bool(text) and re.sub(r"[^0-9.]", "", text) not in ("", "0", "0.0")


# -- the checks ----------------------------------------------------------------------------------
# Each check: (object, every object) → list of messages. `DEFAULT` are kube-linter's defaults.
def dangling_service(obj, objects):
    if obj.get("kind") != "Service":
        return []
    selector = (obj.get("spec") or {}).get("selector")
    if not selector:
        return []
    for other in objects:
        template = pod_template(other)
        if (template is not None and other["metadata"].get("namespace") ==
                obj["metadata"].get("namespace")
                and selects(selector, (template.get("metadata") or {}).get("labels") or {})):
            return []
    return [f"no pods found matching service labels ({selector})"]


def deprecated_service_account_field(obj, _):
    spec = pod_spec(obj)
    if spec and spec.get("serviceAccount") and spec.get("serviceAccount") != spec.get(
            "serviceAccountName"):
        return ["serviceAccount is specified, but it is deprecated; use serviceAccountName"]
    return []


def _host_paths(obj):
    for volume in (pod_spec(obj) or {}).get("volumes") or []:
        host_path = (volume.get("hostPath") or {}).get("path")
        if host_path is not None:
            yield volume.get("name"), host_path.rstrip("/") or "/"


def docker_sock(obj, _):
    return [f"volume {name} mounts docker.sock from the host" for name, path in _host_paths(obj)
            if re.search(r"docker.sock$", path)]


def sensitive_host_mounts(obj, _):
    return [f"volume {name} mounts the sensitive host directory {path}"
            for name, path in _host_paths(obj) if SENSITIVE_HOST_DIRS.search(path)]


def drop_net_raw_capability(obj, _):
    out = []
    for c in containers(obj):
        caps = ((c.get("securityContext") or {}).get("capabilities") or {})
        dropped = {str(x).upper() for x in caps.get("drop") or []}
        added = {str(x).upper() for x in caps.get("add") or []}
        if not dropped & {"NET_RAW", "ALL"} or added & {"NET_RAW", "ALL"}:
            out.append(f"container {c.get('name')} does not drop the NET_RAW capability")
    return out


def env_var_secret(obj, _):
    return [f"environment variable {e.get('name')} in container {c.get('name')} holds a literal "
            "secret" for c in containers(obj) for e in c.get("env") or []
            if re.search(r"(?i)secret", e.get("name", "")) and e.get("value")]


def read_secret_from_env_var(obj, _):
    return [f"environment variable {e.get('name')} in container {c.get('name')} reads a Secret"
            for c in containers(obj) for e in c.get("env") or []
            if ((e.get("valueFrom") or {}).get("secretKeyRef"))]


def _host_flag(field):
    def check(obj, _):
        spec = pod_spec(obj)
        return [f"{field} is true"] if spec and spec.get(field) is True else []
    return check


def latest_tag(obj, _):
    return [f"container {c.get('name')} uses the image {c.get('image')!r} without a pinned tag"
            for c in containers(obj) if any(p.match(str(c.get("image", ""))) for p in LATEST_TAG)]


def mismatching_selector(obj, _):
    if obj.get("kind") not in POD_KINDS - {"Pod", "CronJob", "Job"}:
        return []
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = ((pod_template(obj) or {}).get("metadata") or {}).get("labels") or {}
    if not selector or not selects(selector, labels):
        return [f"the selector {selector} does not match the pod template labels"]
    return []


def no_anti_affinity(obj, _):
    if obj.get("kind") not in ("Deployment", "StatefulSet"):
        return []
    if int((obj.get("spec") or {}).get("replicas", 1) or 1) < 2:
        return []
    affinity = (pod_spec(obj) or {}).get("affinity") or {}
    if affinity.get("podAntiAffinity"):
        return []
    return ["no pod anti-affinity rule: replicas may be scheduled on one node"]


def no_extensions_v1beta(obj, _):
    return [f"uses the removed API {obj.get('apiVersion')}"] if re.match(
        r"^extensions/v1beta.+", str(obj.get("apiVersion", ""))) else []


def no_read_only_root_fs(obj, _):
    return [f"container {c.get('name')} does not have a read-only root file system"
            for c in containers(obj)
            if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True]


def non_existent_service_account(obj, objects):
    spec = pod_spec(obj)
    name = (spec or {}).get("serviceAccountName") or (spec or {}).get("serviceAccount")
    if not name or name == "default":
        return []
    namespace = obj["metadata"].get("namespace")
    for other in objects:
        if (other.get("kind") == "ServiceAccount" and other["metadata"].get("name") == name
                and other["metadata"].get("namespace") == namespace):
            return []
    return [f"serviceAccount {name!r} not found"]


def non_isolated_pod(obj, objects):
    template = pod_template(obj)
    if template is None or obj.get("kind") == "Pod":
        return []
    labels = (template.get("metadata") or {}).get("labels") or {}
    for other in objects:
        if (other.get("kind") == "NetworkPolicy"
                and other["metadata"].get("namespace") == obj["metadata"].get("namespace")):
            selector = ((other.get("spec") or {}).get("podSelector") or {})
            if not selector or selects(selector.get("matchLabels") or {}, labels):
                return []
    return ["no NetworkPolicy selects these pods"]


def privilege_escalation_container(obj, _):
    # Explicitly false, as kube-linter's remediation says: unset leaves no_new_privs off, so a
    # setuid binary in the image could still gain privileges.
    return [f"container {c.get('name')} does not set allowPrivilegeEscalation: false"
            for c in containers(obj)
            if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False]


def privileged_container(obj, _):
    return [f"container {c.get('name')} is privileged" for c in containers(obj)
            if (c.get("securityContext") or {}).get("privileged") is True]


def run_as_non_root(obj, _):
    pod = (pod_spec(obj) or {}).get("securityContext") or {}
    out = []
    for c in containers(obj):
        ctx = c.get("securityContext") or {}
        non_root = ctx.get("runAsNonRoot", pod.get("runAsNonRoot"))
        user = ctx.get("runAsUser", pod.get("runAsUser"))
        if user == 0 or not (non_root is True or (isinstance(user, int) and user > 0)):
            out.append(f"container {c.get('name')} may run as root")
    return out


def ssh_port(obj, _):
    return [f"container {c.get('name')} exposes port 22" for c in containers(obj)
            for p in c.get("ports") or []
            if p.get("containerPort") == 22 and p.get("protocol", "TCP") == "TCP"]


def unsafe_sysctls(obj, _):
    sysctls = ((pod_spec(obj) or {}).get("securityContext") or {}).get("sysctls") or []
    return [f"unsafe sysctl {s.get('name')}" for s in sysctls
            if str(s.get("name", "")).startswith(UNSAFE_SYSCTLS)]


def _requirements(resource, requirements_type="any"):
    """kube-linter's cpu-/memory-requirements templates with bounds 0..0: report unset values.
    requirementsType: request, limit or any (both are required)."""
    kinds = {"request": ("requests",), "limit": ("limits",),
             "any": ("requests", "limits")}[requirements_type]

    def check(obj, _):
        out = []
        for c in containers(obj):
            resources = c.get("resources") or {}
            for kind in kinds:
                if not _quantity_set((resources.get(kind) or {}).get(resource)):
                    out.append(f"container {c.get('name')} has no {resource} {kind[:-1]}")
        return out
    return check


# Templates usable from `customChecks` (name, template, params), as in kube-linter.
TEMPLATES = {"cpu-requirements": lambda params: _requirements("cpu", params["requirementsType"]),
             "memory-requirements": lambda params: _requirements(
                 "memory", params["requirementsType"])}


_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")   # IANA_SVC_NAME


def invalid_target_ports(obj, _):
    """Port names (Service targetPort, container ports) that break the IANA service-name rules
    (at most 15 characters of a-z, 0-9 and inner dashes, at least one letter)."""
    names = []
    if obj.get("kind") == "Service":
        names = [p.get("targetPort") for p in (obj.get("spec") or {}).get("ports") or []]
    names += [p.get("name") for c in containers(obj) for p in c.get("ports") or []]
    return [f"port name {name!r} is not a valid IANA service name" for name in names
            if isinstance(name, str) and not _PORT_NAME.match(name)]


CHECKS = {
    "dangling-service": dangling_service,
    "deprecated-service-account-field": deprecated_service_account_field,
    "docker-sock": docker_sock,
    "drop-net-raw-capability": drop_net_raw_capability,
    "env-var-secret": env_var_secret,
    "host-ipc": _host_flag("hostIPC"),
    "host-network": _host_flag("hostNetwork"),
    "host-pid": _host_flag("hostPID"),
    "invalid-target-ports": invalid_target_ports,
    "latest-tag": latest_tag,
    "mismatching-selector": mismatching_selector,
    "no-anti-affinity": no_anti_affinity,
    "no-extensions-v1beta": no_extensions_v1beta,
    "no-read-only-root-fs": no_read_only_root_fs,
    "non-existent-service-account": non_existent_service_account,
    "privilege-escalation-container": privilege_escalation_container,
    "privileged-container": privileged_container,
    "run-as-non-root": run_as_non_root,
    "sensitive-host-mounts": sensitive_host_mounts,
    "ssh-port": ssh_port,
    "unsafe-sysctls": unsafe_sysctls,
    "unset-cpu-requirements": _requirements("cpu"),
    "unset-memory-requirements": _requirements("memory"),
    # Not on by default in kube-linter; `checks.include` turns them on.
    "non-isolated-pod": non_isolated_pod,
    "read-secret-from-env-var": read_secret_from_env_var,
}
NOT_DEFAULT = {"non-isolated-pod", "read-secret-from-env-var"}
DEFAULT = set(CHECKS) - NOT_DEFAULT


# -- config and driver ---------------------------------------------------------------------------
class ConfigError(Exception):
    pass


def load_config(path: Path) -> dict:
    """The checks to run {name: function}; every exclusion must say why on its own line."""
    text = path.read_text()
    config = yaml.safe_load(text) or {}
    checks = config.get("checks") or {}
    custom = {}
    for spec in config.get("customChecks") or []:
        params = spec.get("params") or {}
        if (spec.get("template") not in TEMPLATES or params.get("requirementsType") not in
                ("request", "limit", "any") or params.get("lowerBoundMillis", 0) != 0
                or params.get("upperBoundMillis", 0) != 0 or params.get("lowerBoundMB", 0) != 0
                or params.get("upperBoundMB", 0) != 0):
            raise ConfigError(f"customChecks: {spec.get('name')!r}: only the cpu-/memory-"
                              "requirements templates with bounds 0 are implemented")
        custom[spec["name"]] = TEMPLATES[spec["template"]](params)
    unknown = set(checks) - {"addAllBuiltIn", "doNotAutoAddDefaults", "include", "exclude",
                             "ignorePaths"}
    if unknown:
        raise ConfigError(f"unsupported keys under checks: {sorted(unknown)}")
    enabled = set() if checks.get("doNotAutoAddDefaults") else set(DEFAULT)
    if checks.get("addAllBuiltIn"):
        enabled |= set(CHECKS)
    for name in checks.get("include") or []:
        if name not in CHECKS:
            raise ConfigError(f"include: {name!r} is not a check this script implements")
        enabled.add(name)
    for name in checks.get("exclude") or []:
        line = re.search(rf"^\s*-\s*{re.escape(name)}\s*#\s*(.+)$", text, re.MULTILINE)
        if line is None or len(line.group(1).strip()) < 20:
            raise ConfigError(f"exclude: {name!r} needs its reason as a comment on its line")
        enabled.discard(name)
    return {**{name: CHECKS[name] for name in enabled}, **custom}


def lint(objects: list[dict], enabled: dict) -> list[str]:
    findings = []
    for obj in objects:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        for name, check in sorted(enabled.items()):
            reason = annotations.get(IGNORE_PREFIX + name)
            if reason is not None and len(str(reason).strip()) >= 10:
                continue
            for message in check(obj, objects):
                meta = obj.get("metadata") or {}
                findings.append(f"{meta.get('namespace', '')}/{obj.get('kind')}/"
                                f"{meta.get('name')}: {name}: {message}")
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=".kube-linter.yaml", type=Path)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        enabled = load_config(args.config)
    except ConfigError as exc:
        print(f"kube_lint: {args.config}: {exc}", file=sys.stderr)
        return 2
    failed = False
    for path in args.files:
        objects = [o for o in yaml.safe_load_all(path.read_text()) if isinstance(o, dict)]
        findings = lint(objects, enabled)
        for finding in findings:
            print(f"{path.name}: {finding}")
        failed |= bool(findings)
    print(f"kube_lint: {len(enabled)} checks over {len(args.files)} file(s): "
          f"{'findings above' if failed else 'no findings'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
