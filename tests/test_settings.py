"""Every setting is declared once, in image/zai_proxy/settings.py; what repeats it is checked here.

The README's configuration table is generated from it; the chart's `_env.tpl` (which value renders
which variable), the values.yaml comments and the schema's bounds must agree with it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

import yaml

from tools import settings_docs
from zai_proxy import config
from zai_proxy.setting_kinds import Boolean, Duration, Integer, Number
from zai_proxy.settings import BY_FIELD, BY_NAME, DEFAULTS, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "chart" / "zai-proxy"
ENV_TPL = CHART / "templates" / "_env.tpl"
VALUES = CHART / "values.yaml"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CHARTED = [s for s in SETTINGS if s.chart]


def test_the_readme_table_is_generated_from_the_settings():
    stale = settings_docs.diff((ROOT / "README.md").read_text())
    assert not stale, f"{stale}\nREADME.md's configuration table is stale: {settings_docs.FIX}"


def test_config_has_one_field_per_setting_and_its_defaults_come_from_the_table():
    fields = {f.name: f for f in dataclasses.fields(config.Config)}
    assert set(fields) == set(BY_FIELD)
    for name, field in fields.items():
        if BY_FIELD[name].default is not None:
            assert field.default == DEFAULTS[name], name


def test_every_environment_variable_the_image_reads_is_a_setting():
    """A variable read outside the table would be undocumented and unvalidated."""
    libraries = {"DATA_GYM_CACHE_DIR"}   # tiktoken's own fallback, named in a message only
    read = set()
    for path in (ROOT / "image").rglob("*.py"):
        read |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]+)"', path.read_text()))
    assert read, "the scan found no environment reads: its pattern is out of date"
    names = {name for s in SETTINGS for name in s.names}
    assert sorted(read - names - libraries) == []


def _env_template_refs() -> dict[str, set[str]]:
    """{env var: values keys referenced in its block or in the with/if that guards it}."""
    text = ENV_TPL.read_text()
    body = text[text.index('{{- define "zai-proxy.env" -}}'):]
    refs: dict[str, set[str]] = defaultdict(set)
    current, guard = None, set()
    for line in body.splitlines()[1:]:
        found = set(re.findall(r"\$v\.([A-Za-z0-9_.]+)", line))
        name = re.match(r"\s*- name: ([A-Z][A-Z0-9_]*)\s*$", line)
        if name:
            current = name.group(1)
            refs[current] |= guard
            guard = set()
        elif re.match(r"\s*\{\{-? (with|if) ", line):
            current, guard = None, found
        elif re.match(r"\s*\{\{-? (else|end)", line):
            current, guard = None, set()
        elif current:
            refs[current] |= found
    return refs


def test_env_template_renders_each_charted_setting_from_its_value():
    refs = _env_template_refs()
    assert len(refs) > 30, "the _env.tpl parser found too few variables: its shape changed"
    for setting in CHARTED:
        rendered = set().union(*(refs.get(name, set()) for name in setting.names))
        assert any(name in refs for name in setting.names), \
            f"{setting.name}: settings.py maps it to `{setting.chart}`, but _env.tpl never sets it"
        assert setting.chart in rendered, \
            f"{setting.name}: _env.tpl renders it from {sorted(rendered)}, settings.py says " \
            f"`{setting.chart}`"
    names = {name for s in SETTINGS for name in s.names}
    assert sorted(set(refs) - names) == [], "_env.tpl sets variables that are not settings"


def _values_comments() -> dict[str, str]:
    """{dotted values key: the comment block right above it} from values.yaml."""
    comments, stack, pending = {}, [], []
    for line in VALUES.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        key = re.match(r"^( *)([A-Za-z0-9_-]+):", line)
        if not key:
            pending = []
            continue
        depth = len(key.group(1)) // 2
        stack[depth:] = [key.group(2)]
        comments[".".join(stack)] = " ".join(pending)
        pending = []
    return comments


def _named_settings(text: str) -> set[str]:
    return {name for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", text) if name in BY_NAME}


def test_values_comments_name_the_variable_each_value_renders():
    comments, problems = _values_comments(), []
    for setting in CHARTED:
        if setting.name not in _named_settings(comments.get(setting.chart, "")):
            problems.append(f"the comment on `{setting.chart}` should name (`{setting.name}`)")
    for key, comment in comments.items():
        problems += [f"the comment on `{key}` names `{name}`, which settings.py renders from "
                     f"`{BY_NAME[name].chart}`" for name in _named_settings(comment)
                     if BY_NAME[name].chart != key]
    assert problems == [], "values.yaml:\n" + "\n".join(problems)


def _schema_node(key: str) -> dict:
    node = SCHEMA
    for part in key.split("."):
        node = node["properties"][part]
    return node


def _schema_descriptions(node=SCHEMA, path=()):
    for name, child in node.get("properties", {}).items():
        yield ".".join((*path, name)), child.get("description", "")
        yield from _schema_descriptions(child, (*path, name))


def test_schema_types_and_bounds_never_admit_what_the_proxy_refuses():
    types = {Integer: "integer", Number: "number", Boolean: "boolean", Duration: "string"}
    problems = []
    for setting in CHARTED:
        node, kind = _schema_node(setting.chart), setting.kind
        if type(kind) in types and node.get("type") != types[type(kind)]:
            problems.append(f"`{setting.chart}` should be of type {types[type(kind)]}")
        if not isinstance(kind, (Integer, Number)):
            continue
        if kind.minimum is not None and node.get("minimum", float("-inf")) < kind.minimum:
            problems.append(f"`{setting.chart}` needs \"minimum\" ≥ {kind.minimum} "
                            f"({setting.name})")
        if kind.maximum is not None and node.get("maximum", float("inf")) > kind.maximum:
            problems.append(f"`{setting.chart}` needs \"maximum\" ≤ {kind.maximum} "
                            f"({setting.name})")
    for key, description in _schema_descriptions():
        problems += [f"the description of `{key}` names `{name}`" for name in
                     _named_settings(description) if BY_NAME[name].chart != key]
    assert problems == [], "values.schema.json:\n" + "\n".join(problems)


def _as_env(value) -> str:
    """A values.yaml value as _env.tpl renders it into an env var."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value) if value else ""
    return str(value)


def test_chart_defaults_are_valid_settings_equal_to_the_image_defaults():
    """An empty chart value means "the image's default"; any other must parse and agree."""
    values = yaml.safe_load(VALUES.read_text())
    for setting in CHARTED:
        value = values
        for part in setting.chart.split("."):
            value = value[part]
        text = _as_env(value)
        if text == "":
            continue
        parsed = setting.kind.parse(text)   # raises if the chart ships what the proxy refuses
        expected = setting.kind.parse(setting.chart_default or setting.default)
        assert parsed == expected, f"{setting.chart}={value!r} but {setting.name} defaults to " \
                                   f"{setting.chart_default or setting.default!r}"
