"""The kinds of value a setting can hold: each parses the operator's text and states its bounds.

A kind never builds the error message itself: it raises `Invalid` with the problem, and the
loader (config.py) names the variable, and the value too unless the kind holds secrets. Every
kind describes what it accepts in words, for the README table (tools/settings_docs.py).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


class Invalid(ValueError):
    """What is wrong with a value; `show_value=False` keeps the value out of the message."""

    def __init__(self, problem: str, show_value: bool = True):
        super().__init__(problem)
        self.problem = problem
        self.show_value = show_value


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def format_duration(seconds: float) -> str:
    """600 → '10m', 0.1 → '100ms': the largest unit the parser accepts that divides exactly."""
    if seconds == 0:
        return "0"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and math.isclose(seconds / size, round(seconds / size)):
            return f"{round(seconds / size)}{unit}"
    return f"{round(seconds * 1000, 3):g}ms"


def _format_number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _range(minimum, maximum, show) -> str:
    if minimum is not None and maximum is not None:
        return f"{show(minimum)} – {show(maximum)}"
    if minimum is not None:
        return f"≥ {show(minimum)}"
    return f"≤ {show(maximum)}" if maximum is not None else "any"


def _check_range(value: float, minimum, maximum, show) -> None:
    if minimum is not None and value < minimum:
        raise Invalid(f"is below the minimum {show(minimum)}")
    if maximum is not None and value > maximum:
        raise Invalid(f"is above the maximum {show(maximum)}")


class Kind:
    secret = False          # the value never appears in a message (keys, URIs with passwords)
    accepts_empty = False   # an empty value is a value of its own, not "unset"
    unset = None            # the value of a setting that is unset and has no default

    def parse(self, text: str):
        raise NotImplementedError

    def accepted(self) -> str:
        raise NotImplementedError


class Integer(Kind):
    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum

    def parse(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise Invalid("is not an integer") from None
        _check_range(value, self.minimum, self.maximum, _format_number)
        return value

    def accepted(self) -> str:
        return "integer " + _range(self.minimum, self.maximum, _format_number)


class Number(Kind):
    def __init__(self, minimum: float | None = None, maximum: float | None = None):
        self.minimum, self.maximum = minimum, maximum

    def parse(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise Invalid("is not a number") from None
        if not math.isfinite(value):   # float() takes 'inf' and 'nan'; neither is a rate
            raise Invalid("is not a finite number")
        _check_range(value, self.minimum, self.maximum, _format_number)
        return value

    def accepted(self) -> str:
        return "number " + _range(self.minimum, self.maximum, _format_number)


class Duration(Kind):
    """Seconds, from '500ms', '30s', '5m', '6h' or a bare number of seconds."""

    def __init__(self, minimum: float = 0.0, maximum: float | None = None):
        self.minimum, self.maximum = minimum, maximum

    def parse(self, text: str) -> float:
        match = _DURATION.match(text)
        if not match:
            raise Invalid("is not a duration (examples: 500ms, 30s, 5m, 6h)")
        value = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        _check_range(value, self.minimum, self.maximum, format_duration)
        return value

    def accepted(self) -> str:
        return "duration " + _range(self.minimum, self.maximum, format_duration)


class Boolean(Kind):
    def parse(self, text: str) -> bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise Invalid("is not a boolean (use true or false)")

    def accepted(self) -> str:
        return "`true` / `false`"


class Choice(Kind):
    def __init__(self, *options: str):
        self.options = options

    def parse(self, text: str) -> str:
        if text.lower() not in self.options:
            raise Invalid(f"must be one of {', '.join(self.options)}")
        return text.lower()

    def accepted(self) -> str:
        return ", ".join(f"`{option}`" for option in self.options)


class Text(Kind):
    def parse(self, text: str) -> str:
        if any(ord(c) < 0x20 or ord(c) == 0x7f for c in text):
            raise Invalid("contains a line break or a control character")
        return text

    def accepted(self) -> str:
        return "one line of text"


class Host(Kind):
    """The address gunicorn binds: an IP literal, so a hostname never binds a surprise."""

    def parse(self, text: str) -> str:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise Invalid("is not an IP address (127.0.0.1: this machine only; 0.0.0.0: every "
                          "interface)") from None

    def accepted(self) -> str:
        return "IP address"


def _port_problem(parts) -> str | None:
    try:
        port = parts.port
    except ValueError:
        return "has an invalid port (use 1-65535)"
    return "has an invalid port (use 1-65535)" if port == 0 else None


class Origin(Kind):
    """An http(s) origin: scheme, host and port, nothing else."""

    def parse(self, text: str) -> str:
        parts = urlsplit(text)
        if "@" in parts.netloc:
            # RFC 9110 §4.2.4: userinfo in an http(s) URI is an error. `requests` would turn it
            # into Basic auth that replaces the Z.AI key, and messages would echo the password.
            raise Invalid("must not carry credentials (user:password@host); the Z.AI key goes "
                          "in ZAI_API_KEY", show_value=False)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid("must be an http(s) origin such as https://api.z.ai")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise Invalid("must be an origin only (no path); set ZAI_OPENAI_PATH / "
                          "ZAI_ANTHROPIC_PATH for paths")
        problem = _port_problem(parts)
        if problem:
            raise Invalid(problem)
        return f"{parts.scheme}://{parts.netloc}"

    def accepted(self) -> str:
        return "http(s) origin, no path, no credentials"


class UrlPath(Kind):
    def parse(self, text: str) -> str:
        if not text.startswith("/") or "?" in text or "#" in text or ".." in text:
            raise Invalid("must be an absolute URL path such as /api/paas/v4")
        return text.rstrip("/")

    def accepted(self) -> str:
        return "URL path starting with `/`"


def _header_safe(key: str) -> str:
    """A key is sent, or compared with what a client sent, as an HTTP header value: ASCII only,
    no line breaks or control characters. Anything else would be accepted at start and then make
    every request fail, with the header (key included) quoted in the exception."""
    if any(not 0x20 <= ord(c) < 0x7f for c in key):
        raise Invalid("holds a character a header value cannot carry (a line break, a control "
                      "or a non-ASCII character); a key must be one line of ASCII")
    return key


class Key(Kind):
    secret = True

    def parse(self, text: str) -> str:
        return _header_safe(text)

    def accepted(self) -> str:
        return "ASCII, one line"


class KeyList(Kind):
    """Comma-separated keys. A list that parses to no key is refused: client auth that was asked
    for must never end up off because of a parse result."""

    secret = True
    accepts_empty = True   # set but empty is a list of no keys, and refused like ","
    unset = ()

    def parse(self, text: str) -> tuple[str, ...]:
        keys = tuple(item.strip() for item in text.split(",") if item.strip())
        if not keys:
            raise Invalid("holds no key (it is empty or only separators); unset it to turn "
                          "client auth off")
        return tuple(_header_safe(key) for key in keys)

    def accepted(self) -> str:
        return "comma-separated ASCII keys, at least one"


class StorageUri(Kind):
    secret = True   # a Redis URI carries its password

    _SCHEMES = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster")

    def parse(self, text: str) -> str:
        scheme = text.split("://", 1)[0] if "://" in text else ""
        if scheme not in self._SCHEMES:
            raise Invalid("must start with memory:// or redis:// (or rediss://, "
                          "redis+sentinel://, redis+cluster://)")
        if any(ord(c) < 0x20 or ord(c) == 0x7f for c in text):
            raise Invalid("contains a line break or a control character")
        if scheme in ("redis", "rediss"):   # the other two list several hosts
            problem = _port_problem(urlsplit(text))
            if problem:
                raise Invalid(problem)
        return text

    def accepted(self) -> str:
        return ", ".join(f"`{scheme}://…`" if scheme != "memory" else "`memory://`"
                         for scheme in self._SCHEMES)


class JsonObject(Kind):
    def parse(self, text: str) -> dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Invalid(f"is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
                          show_value=False) from None
        if not isinstance(value, dict):
            raise Invalid("must be a JSON object {model: {input, output, ...}}", show_value=False)
        return value

    def accepted(self) -> str:
        return "JSON object"


class Labels(Kind):
    """Comma-separated metric label values, lower-cased."""

    unset = ()

    def parse(self, text: str) -> tuple[str, ...]:
        return tuple(item.strip().lower() for item in text.split(",") if item.strip())

    def accepted(self) -> str:
        return "comma-separated names"


class Networks(Kind):
    unset = ()

    def parse(self, text: str) -> tuple:
        networks = []
        for item in (item.strip() for item in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise Invalid(f"has an invalid network {item!r}") from None
        return tuple(networks)

    def accepted(self) -> str:
        return "comma-separated CIDRs"


def sanitize_label(text: str) -> str:
    """A label value safe for dashboards: lower case, [a-z0-9_-], at most 32 characters."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")[:32]
    return cleaned or "unknown"


class VariantLabel(Kind):
    def parse(self, text: str) -> str:
        return sanitize_label(text)

    def accepted(self) -> str:
        return "any; sanitised to `[a-z0-9_-]`, ≤ 32 chars"


class AbsolutePath(Kind):
    def __init__(self, empty_disables: bool = False):
        self.accepts_empty = empty_disables

    def parse(self, text: str) -> str:
        if text == "" and self.accepts_empty:
            return ""
        if not text.startswith("/") or any(ord(c) < 0x20 for c in text):
            raise Invalid("must be an absolute path")
        return text

    def accepted(self) -> str:
        return "absolute path" + (", or empty" if self.accepts_empty else "")
