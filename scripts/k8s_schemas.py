"""Lay out the strict core Kubernetes schemas of the PyPI `kubernetes-validate` package for kubeconform.

The package's files reference their shared definitions by an absolute URL
(`$id: https://kubernetes.io/api/...`, `$ref: /api/_definitions.json#...`), which its own Python
resolver maps in memory but kubeconform would try to fetch over the network. This copies one
version's directory with the `$id`s dropped and the references made relative to the copy, so
kubeconform resolves them from disk, offline.

usage: python scripts/k8s_schemas.py OUT_DIR VERSION...   (VERSION like 1.30 or 1.37)
Prints the directory of each version; skips a version already laid out from the same package.
"""

from __future__ import annotations

import json
import pathlib
import sys

import kubernetes_validate

PACKAGE = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
REMOTE_DEFINITIONS = "/api/_definitions.json#"


def localise(node):
    """Drop `$id`s and turn the absolute definitions reference into a file-relative one."""
    if isinstance(node, dict):
        return {key: (value.replace(REMOTE_DEFINITIONS, "_definitions.json#", 1)
                      if key == "$ref" and isinstance(value, str) else localise(value))
                for key, value in node.items() if key != "$id"}
    if isinstance(node, list):
        return [localise(item) for item in node]
    return node


def lay_out(out_root: pathlib.Path, version: str) -> pathlib.Path:
    name = f"v{version}.0-local-strict"
    source = PACKAGE / name
    if not source.is_dir():
        raise SystemExit(f"kubernetes-validate {kubernetes_validate.__version__} has no {name}")
    target = out_root / name
    stamp = target / ".from-kubernetes-validate"
    if stamp.is_file() and stamp.read_text() == kubernetes_validate.__version__:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.json"):
        schema = localise(json.loads(path.read_text()))
        (target / path.name).write_text(json.dumps(schema))
    stamp.write_text(kubernetes_validate.__version__)
    return target


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_root = pathlib.Path(argv[0])
    for version in argv[1:]:
        print(lay_out(out_root, version.lstrip("v")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
