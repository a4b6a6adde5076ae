"""Samples from a /metrics page in the Prometheus text format, read quickly.

`samples(text)` gives {(sample name, frozenset(labels.items())): value}, the same as walking
prometheus_client's `text_string_to_metric_families` (test_metrics_text.py holds it to that). It
is read often: the reliability runs and the `wait_value` polls read a proxy's page several times
per request they check, and prometheus_client's parser, which goes character by character, took
half of the reliability runner's CPU.

Lines in the shape prometheus_client writes (a name, optional quoted labels, a value, an optional
timestamp) are read with one regular expression. Any other line hands the whole page to
prometheus_client's parser, so an unusual page is read correctly, only more slowly.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

_LABEL_NAME = r'[a-zA-Z_][a-zA-Z0-9_]*'
_LABEL_VALUE = r'(?:[^"\\\n]|\\[\\"n])*'      # any character but ", \ and newline, or an escape
_LABEL = f'{_LABEL_NAME}="{_LABEL_VALUE}"'
_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)'
                     rf'(?:\{{((?:{_LABEL})(?:,{_LABEL})*,?)?\}})?'
                     r' ([^ ]+)(?: -?[0-9]+)?')
_LABELS = re.compile(f'({_LABEL_NAME})="({_LABEL_VALUE})"')
_ESCAPE = re.compile(r'\\([\\"n])')


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, frozenset(labels.items())): value} of every sample on the page."""
    found: dict[tuple, float] = {}
    for line in text.split("\n"):
        if not line or line[0] == "#":
            continue
        match = _SAMPLE.fullmatch(line)
        if match is None:
            return _samples_slowly(text)
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            return _samples_slowly(text)
        pairs = frozenset((key, _unescape(raw)) for key, raw in _LABELS.findall(labels)) \
            if labels else frozenset()
        found[(name, pairs)] = number
    return found


def _samples_slowly(text: str) -> dict[tuple, float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}
