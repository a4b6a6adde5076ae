"""A stand-in for `kubectl` (we have no cluster) that answers from `helm template` output.

    KUBECTL_STANDIN_OBJECTS=objects.yaml KUBECTL_STANDIN_NAMESPACES="mcp devpod monitoring" \
        python tests/kubectl_standin.py get servicemonitor zai-proxy-canary -n monitoring -o json

It serves the read-only commands the runbooks and scripts/verify-monitoring.sh use, in kubectl's
output formats and with its error messages and exit codes:
  get KIND [NAME] [-n NS] [-o json|yaml|name|jsonpath=TEMPLATE] (KIND/NAME works too; no -o: a table)
  port-forward [-n NS] deployment/NAME LOCAL:REMOTE   (checks the Deployment and its container
                                                     port, prints kubectl's first line, returns)
The namespaces that exist are KUBECTL_STANDIN_NAMESPACES (helm template renders none). Anything
else exits 2 naming what is unsupported, so a script cannot rely on behaviour this does not have.
Every call is appended to KUBECTL_STANDIN_LOG when set.
"""

from __future__ import annotations

import json
import os
import re
import sys

# kind -> (plural, API group or "" for core, namespaced, the names kubectl accepts)
KINDS = {
    "Namespace": ("namespaces", "", False, {"namespace", "namespaces", "ns"}),
    "ServiceMonitor": ("servicemonitors", "monitoring.coreos.com", True,
                       {"servicemonitor", "servicemonitors", "smon"}),
    "PrometheusRule": ("prometheusrules", "monitoring.coreos.com", True,
                       {"prometheusrule", "prometheusrules", "promrule"}),
    "ConfigMap": ("configmaps", "", True, {"configmap", "configmaps", "cm"}),
    "Service": ("services", "", True, {"service", "services", "svc"}),
    "Deployment": ("deployments", "apps", True, {"deployment", "deployments", "deploy"}),
    "Pod": ("pods", "", True, {"pod", "pods", "po"}),
}


class Unsupported(Exception):
    pass


def kind_of(word: str) -> str:
    word = word.lower()
    for kind, (plural, group, _, names) in KINDS.items():
        if word in names or (group and word == f"{plural}.{group}"):
            return kind
    raise Unsupported(f"resource type {word!r}")


def resource(kind: str) -> str:
    plural, group, _, _ = KINDS[kind]
    return f"{plural}.{group}" if group else plural


def load() -> tuple[list[dict], set[str]]:
    """The objects (a YAML stream as helm template prints it, or the same as a JSON list, which
    loads faster) and the namespaces that exist."""
    path = os.environ["KUBECTL_STANDIN_OBJECTS"]
    with open(path) as handle:
        if path.endswith(".json"):
            objects = json.load(handle)
        else:
            import yaml   # only here: a JSON list spares the import on every call
            objects = [o for o in yaml.safe_load_all(handle) if o]
    namespaces = set(os.environ.get("KUBECTL_STANDIN_NAMESPACES", "").split())
    objects += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                 "status": {"phase": "Active"}} for ns in sorted(namespaces)]
    return objects, namespaces


def parse(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and the flags kubectl spells -n/--namespace and -o/--output."""
    words, flags = [], {}
    aliases = {"-n": "namespace", "--namespace": "namespace", "-o": "output", "--output": "output"}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in aliases:
            if i + 1 >= len(args):
                raise Unsupported(f"{arg} without a value")
            flags[aliases[arg]] = args[i + 1]
            i += 2
            continue
        match = re.fullmatch(r"(--namespace|--output)=(.*)|(-n|-o)(.+)", arg)
        if match:
            flag = match.group(1) or match.group(3)
            flags[aliases[flag]] = match.group(2) if match.group(1) else match.group(4)
        elif arg == "--ignore-not-found":
            flags["ignore-not-found"] = "true"
        elif arg.startswith("-"):
            raise Unsupported(f"flag {arg}")
        else:
            words.append(arg)
        i += 1
    return words, flags


# -- jsonpath, the subset the runbooks use: {.a.b}, {.a.*}, {.a['b.c']}, {.a.b\.c} ---------------
_STEP = re.compile(r"\.((?:\\\.|[^.\[\\])+)|\[['\"]([^'\"]+)['\"]\]|\[\*\]")


def _steps(path: str) -> list[str]:
    """`.a.b\\.c['d'][*]` -> ["a", "b.c", "d", "*"]; `.*` and `[*]` are wildcards."""
    steps, pos = [], 0
    while pos < len(path):
        match = _STEP.match(path, pos)
        if not match:
            raise Unsupported(f"jsonpath {path!r}")
        steps.append(match.group(1).replace("\\.", ".") if match.group(1)
                     else match.group(2) or "*")
        pos = match.end()
    return steps


def _walk(values: list, step: str) -> list:
    out = []
    for value in values:
        if step == "*":
            out += list(value.values()) if isinstance(value, dict) else list(value or [])
        elif isinstance(value, dict) and step in value:
            out.append(value[step])
    return out


def _text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def jsonpath(template: str, obj: dict) -> str:
    out, pos = [], 0
    for match in re.finditer(r"\{([^{}]*)\}", template):
        out.append(template[pos:match.start()])
        values = [obj]
        for step in _steps(match.group(1).strip()):
            values = _walk(values, step)
        out.append(" ".join(_text(v) for v in values))
        pos = match.end()
    out.append(template[pos:])
    return "".join(out)


# -- commands ---------------------------------------------------------------------------------
def not_found(kind: str, name: str) -> int:
    print(f'Error from server (NotFound): {resource(kind)} "{name}" not found', file=sys.stderr)
    return 1


def get(words: list[str], flags: dict[str, str]) -> int:
    if not words or len(words) > 2:
        raise Unsupported(f"get {' '.join(words)}")
    what, name = words[0], (words[1] if len(words) == 2 else None)
    if "/" in what:
        if name:
            raise Unsupported("get TYPE/NAME NAME")
        what, name = what.split("/", 1)
    kind = kind_of(what)
    objects, namespaces = load()
    namespaced = KINDS[kind][2]
    namespace = flags.get("namespace", "default")
    found = [o for o in objects if o["kind"] == kind
             and (not namespaced or o["metadata"].get("namespace", "default") == namespace)
             and (name is None or o["metadata"]["name"] == name)]
    found.sort(key=lambda o: o["metadata"]["name"])   # the API server lists by name
    output = flags.get("output", "")
    if name is not None and not found:
        if flags.get("ignore-not-found"):
            return 0
        return not_found(kind, name)
    if name is None and not found:
        where = f" in {namespace} namespace" if namespaced else ""
        print(f"No resources found{where}.", file=sys.stderr)
        if output == "json":
            print(json.dumps({"apiVersion": "v1", "items": [], "kind": "List",
                              "metadata": {"resourceVersion": ""}}, indent=4))
        return 0
    subject = found[0] if name is not None else {
        "apiVersion": "v1", "kind": "List", "items": found, "metadata": {"resourceVersion": ""}}
    if output == "json":
        print(json.dumps(subject, indent=4))
    elif output == "yaml":
        import yaml
        print(yaml.safe_dump(subject, sort_keys=True), end="")
    elif output == "name":
        prefix = resource(kind).replace("s.", ".", 1) if KINDS[kind][1] else kind.lower()
        for o in found:
            print(f"{prefix}/{o['metadata']['name']}")
    elif output.startswith("jsonpath="):
        print(jsonpath(output[len("jsonpath="):], subject), end="")
    elif output == "":
        header = "NAME" + ("   STATUS" if kind == "Namespace" else "") + "   AGE"
        print(header)
        for o in found:
            status = "   Active" if kind == "Namespace" else ""
            print(f"{o['metadata']['name']}{status}   1d")
    else:
        raise Unsupported(f"output format {output!r}")
    return 0


def port_forward(words: list[str], flags: dict[str, str]) -> int:
    if len(words) != 2 or "/" not in words[0] or not re.fullmatch(r"\d+:\d+", words[1]):
        raise Unsupported(f"port-forward {' '.join(words)}")
    what, name = words[0].split("/", 1)
    kind = kind_of(what)
    if kind != "Deployment":
        raise Unsupported(f"port-forward to a {kind}")
    local, remote = words[1].split(":")
    objects, _ = load()
    namespace = flags.get("namespace", "default")
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
             and o["metadata"].get("namespace") == namespace]
    if not found:
        return not_found(kind, name)
    ports = {p["containerPort"] for c in found[0]["spec"]["template"]["spec"]["containers"]
             for p in c.get("ports", [])}
    if int(remote) not in ports:
        print(f"error: unable to forward port because pod is not running or port {remote} is "
              f"not declared by the pod's containers {sorted(ports)}", file=sys.stderr)
        return 1
    print(f"Forwarding from 127.0.0.1:{local} -> {remote}")
    return 0


def main(argv: list[str]) -> int:
    log = os.environ.get("KUBECTL_STANDIN_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps(argv) + "\n")
    try:
        words, flags = parse(argv)
        if not words:
            raise Unsupported("no command")
        command, rest = words[0], words[1:]
        if command == "get":
            return get(rest, flags)
        if command == "port-forward":
            return port_forward(rest, flags)
        raise Unsupported(f"command {command!r}")
    except Unsupported as exc:
        print(f"kubectl stand-in: unsupported {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
