"""Scenario specs (`name;key=value;...`): parsing, validation and the fail_first counters.

The grammar is the same in the `X-Fake-Scenario` header, after `@` in the model name, in
`--scenario` and in `POST /_fake/scenario`. Values may be percent-encoded so that a message can
carry `;` or `=`. Unknown names or keys are refused (400 from the server) because a silently
ignored typo would make a test pass for the wrong reason.
"""

from __future__ import annotations

import threading
from urllib.parse import unquote

# Keys understood by every scenario: the shape of the normal answer that a fault is applied to.
OK_KEYS = frozenset({
    "chunks", "interval_ms", "first_delay_ms", "chunk_text", "seed",
    "prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens",
    "start_input_tokens", "no_usage", "usage_in_last", "finish_reason", "dims",
    "reasoning_chunks",
})
ERROR_KEYS = frozenset({
    "status", "code", "message", "envelope", "error_type", "retry_after", "retry_after_date",
    "body_retry_after", "reset_time", "reset_field", "body",
})
SCENARIO_KEYS = {
    "ok": frozenset(),
    "error": ERROR_KEYS,
    "status": ERROR_KEYS,
    "fail_first": ERROR_KEYS | {"n", "key", "fail_with", "after", "byte_interval_ms"},
    "reset_before": frozenset(),
    "reset_mid": frozenset({"after"}),
    "stall": frozenset({"after"}),
    "hang": frozenset(),
    "drip": frozenset({"byte_interval_ms", "bytes_per_write"}),
    "truncated_json": frozenset({"after"}),
    "empty_200": frozenset(),
    "large": frozenset({"bytes", "chunk_bytes"}),
    "stream_error": frozenset({"after", "code", "message", "error_type"}),
}
# Numeric keys are checked when the spec is parsed, so a bad value is a 400 before any byte of
# the answer is sent rather than an exception half-way through a stream.
INT_KEYS = frozenset({
    "chunks", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens",
    "start_input_tokens", "dims", "status", "reasoning_chunks", "n", "after", "bytes_per_write",
    "bytes", "chunk_bytes",
})
FLOAT_KEYS = frozenset({
    "interval_ms", "first_delay_ms", "byte_interval_ms", "retry_after", "body_retry_after",
})
# What fail_first may fail with (every scenario except ok and fail_first itself).
FAIL_WITH = frozenset(SCENARIO_KEYS) - {"ok", "fail_first"}


class ScenarioError(ValueError):
    """A spec that names an unknown scenario or key, or carries a bad value."""


class Scenario:
    """One parsed spec. `params` maps key -> raw string; typed getters convert on use."""

    __slots__ = ("name", "params", "spec")

    def __init__(self, name: str, params: dict[str, str], spec: str):
        self.name = name
        self.params = params
        self.spec = spec

    def __repr__(self) -> str:
        return f"Scenario({self.spec!r})"

    def get_str(self, key: str, default: str | None = None) -> str | None:
        return self.params.get(key, default)

    def get_int(self, key: str, default: int | None = None) -> int | None:
        raw = self.params.get(key)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ScenarioError(f"fake scenario key {key}={raw!r} is not an integer") from None

    def get_float(self, key: str, default: float | None = None) -> float | None:
        raw = self.params.get(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ScenarioError(f"fake scenario key {key}={raw!r} is not a number") from None

    def flag(self, key: str) -> bool:
        return self.params.get(key, "0").lower() in ("1", "true", "yes", "on")

    def extra_headers(self) -> list[tuple[str, str]]:
        """`h.<Name>=value` keys: response headers added to whatever the scenario sends."""
        return [(k[2:], v) for k, v in self.params.items() if k.startswith("h.")]

    def cache_key(self) -> tuple:
        return (self.name, tuple(sorted(self.params.items())))


OK = None  # set below, after parse() exists

_cache: dict[str, Scenario] = {}
_CACHE_MAX = 1024


def parse(spec: str | None) -> Scenario:
    """Parse a spec; an empty one means `ok`. Results are cached: benchmarks repeat specs."""
    if not spec:
        return OK
    hit = _cache.get(spec)
    if hit is not None:
        return hit
    scenario = _parse(spec)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[spec] = scenario
    return scenario


def _parse(spec: str) -> Scenario:
    parts = [p.strip() for p in spec.strip().split(";") if p.strip()]
    name = "ok"
    if parts and "=" not in parts[0]:
        name = parts.pop(0)
    if name not in SCENARIO_KEYS:
        raise ScenarioError(
            f"unknown fake scenario {name!r}; known: {', '.join(sorted(SCENARIO_KEYS))}")
    allowed = SCENARIO_KEYS[name] | OK_KEYS
    params: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise ScenarioError(f"fake scenario part {part!r} is not key=value")
        if key not in allowed and not key.startswith("h."):
            raise ScenarioError(
                f"fake scenario {name!r} has no key {key!r}; allowed: {', '.join(sorted(allowed))}")
        value = unquote(value.strip()) if "%" in value else value.strip()
        _check_number(key, value)
        params[key] = value
    if name == "fail_first":
        fail_with = params.get("fail_with", "error")
        if fail_with not in FAIL_WITH:
            raise ScenarioError(
                f"fail_with={fail_with!r} unknown; known: {', '.join(sorted(FAIL_WITH))}")
    return Scenario(name, params, spec)


OK = Scenario("ok", {}, "ok")


def _check_number(key: str, value: str) -> None:
    try:
        if key in INT_KEYS:
            int(value)
        elif key in FLOAT_KEYS:
            float(value)
    except ValueError:
        kind = "an integer" if key in INT_KEYS else "a number"
        raise ScenarioError(f"fake scenario key {key}={value!r} is not {kind}") from None


def split_model(model: str) -> tuple[str, str | None]:
    """`glm-4.7@error;status=429` -> (`glm-4.7`, `error;status=429`)."""
    base, sep, spec = model.partition("@")
    return (base, spec) if sep else (model, None)


class FailCounters:
    """Per-key request counters for fail_first; shared by the loop and the test thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def hit(self, key: str) -> int:
        """Count one more request for `key` and return how many came before it."""
        with self._lock:
            seen = self._counts.get(key, 0)
            self._counts[key] = seen + 1
            return seen

    def reset(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._counts.clear()
            else:
                self._counts.pop(key, None)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def resolve(failing: Scenario, counters: FailCounters) -> Scenario:
    """Turn fail_first into the scenario this particular request gets."""
    if failing.name != "fail_first":
        return failing
    seen = counters.hit(failing.get_str("key", "default"))
    if seen >= failing.get_int("n", 1):
        return _as(failing, "ok")
    return _as(failing, failing.get_str("fail_with", "error"))


def _as(source: Scenario, name: str) -> Scenario:
    # Keep every key: the error keys shape the failure and the ok keys the later success.
    return Scenario(name, source.params, source.spec)
