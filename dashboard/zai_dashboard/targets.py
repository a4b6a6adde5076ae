"""DASHBOARD_TARGETS: which variant each scrape target belongs to, and how a target becomes pods.

`production=URL[,URL…];canary=URL[,URL…]`. The variant is the name before `=`, never guessed from
a URL. A URL is either one pod (`http://host:port/metrics`) or every address a name resolves to
(`dns+http://name:port/metrics`: a headless Service, re-resolved every tick, so each replica is
scraped on its own and a pod that comes or goes is noticed).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from typing import Callable
from urllib.parse import urlsplit

VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

Resolver = Callable[[str, int], list[str]]


class TargetError(ValueError):
    """A DASHBOARD_TARGETS entry is malformed; the message says which one, never a credential."""


@dataclasses.dataclass(frozen=True)
class Target:
    variant: str
    scheme: str          # http or https
    host: str
    port: int
    path: str            # path and query, e.g. /metrics
    dns: bool            # every address `host` resolves to is a pod
    auth: tuple[str, str] | None = dataclasses.field(default=None, repr=False)

    def pods(self, resolve: Resolver) -> list[tuple[str, str]]:
        """[(pod key, URL)]: the one URL, or one per resolved address (raises OSError)."""
        if not self.dns:
            key = f"{self.host}:{self.port}{self.path}"
            return [(key, f"{self.scheme}://{_netloc(self.host)}:{self.port}{self.path}")]
        pods = []
        for address in sorted(set(resolve(self.host, self.port))):
            key = f"{_netloc(address)}:{self.port}"
            pods.append((key, f"{self.scheme}://{key}{self.path}"))
        return pods


def _netloc(host: str) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def resolve_all(host: str, port: int) -> list[str]:
    """Every address of `host` (the system resolver: cluster DNS in Kubernetes)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def parse_target(variant: str, text: str) -> Target:
    dns = text.startswith("dns+")
    parts = urlsplit(text[4:] if dns else text)
    if parts.scheme not in ("http", "https"):
        raise TargetError(f"{variant}: a target must start with http://, https://, dns+http:// "
                          "or dns+https://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise TargetError(f"{variant}: a target has an invalid port") from None
    if not host:
        raise TargetError(f"{variant}: a target has no host")
    if parts.fragment:
        raise TargetError(f"{variant}: a target must not have a #fragment")
    auth = None
    if parts.username is not None:
        auth = (parts.username, parts.password or "")
    path = parts.path or "/metrics"
    if parts.query:
        path += "?" + parts.query
    return Target(variant=variant, scheme=parts.scheme, host=host,
                  port=port or (443 if parts.scheme == "https" else 80), path=path, dns=dns,
                  auth=auth)


def parse_targets(text: str) -> dict[str, tuple[Target, ...]]:
    """{variant: targets}, in the order written."""
    found: dict[str, tuple[Target, ...]] = {}
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        variant, sep, urls = entry.partition("=")
        variant = variant.strip()
        if not sep:
            raise TargetError(f"entry {variant[:40]!r} has no '=': write variant=URL[,URL...]")
        if not VARIANT_NAME.match(variant):
            raise TargetError(f"variant {variant[:40]!r} must be 1-32 characters of a-z, 0-9, "
                              "'_' or '-', starting with a letter or digit")
        if variant in found:
            raise TargetError(f"variant {variant!r} is named twice")
        targets = tuple(parse_target(variant, url.strip()) for url in urls.split(",")
                        if url.strip())
        if not targets:
            raise TargetError(f"variant {variant!r} has no URL")
        found[variant] = targets
    if not found:
        raise TargetError("no variant is named")
    return found
