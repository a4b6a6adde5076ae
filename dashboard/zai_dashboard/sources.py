"""Where a tick's samples come from: every pod's /metrics, scraped concurrently.

Each tick re-resolves the `dns+` targets, so the pods behind a headless Service are all scraped,
each on its own, and a pod that comes or goes is seen within one interval. Errors are reduced to
a short category ("timeout", "HTTP 503"…): they reach /api/status, which must never show a
target's address or credentials.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor, wait

import requests
from requests.adapters import HTTPAdapter

from . import exposition
from .config import Config
from .deltas import PodScrape, VariantScrape
from .targets import Resolver, resolve_all

MAX_EXPOSITION_BYTES = 32 * 1024 * 1024
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"


class ScrapeError(Exception):
    """One pod's scrape failed; the message is safe to show (no address, no credential)."""


def make_session(pool: int) -> requests.Session:
    session = requests.Session()
    session.trust_env = False          # never send a pod's metrics through an HTTP proxy
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class ScrapeSource:
    """DASHBOARD_TARGETS: the pods of each variant, scraped directly."""

    name = "scrape"

    def __init__(self, config: Config, resolver: Resolver = resolve_all, threads: int = 16):
        self.config = config
        self.resolver = resolver
        self.timeout = config.scrape_timeout
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scrape")
        self.session = make_session(threads)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    def collect(self, t: float) -> dict[str, VariantScrape]:
        deadline = time.monotonic() + self.timeout + 1.0
        lookups = {(variant, i): self.executor.submit(target.pods, self.resolver)
                   for variant, targets in self.config.targets.items()
                   for i, target in enumerate(targets)}
        wait(lookups.values(), timeout=max(0.0, deadline - time.monotonic()))
        pods: dict[str, list] = {variant: [] for variant in self.config.targets}
        failed: dict[str, str] = {}
        for (variant, i), future in lookups.items():
            target = self.config.targets[variant][i]
            if not future.done():
                failed[variant] = "DNS lookup timed out"
                continue
            try:
                found = future.result()
            except OSError as exc:
                failed[variant] = _dns_error(exc)
                continue
            for key, url in found:
                pods[variant].append((key, self.executor.submit(self._scrape, url, target.auth)))
        futures = [future for found in pods.values() for _, future in found]
        wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        out = {}
        for variant, found in pods.items():
            results = []
            seen = set()
            for key, future in found:
                if key in seen:   # two targets naming the same pod count it once
                    continue
                seen.add(key)
                if not future.done():
                    future.cancel()
                    results.append(PodScrape(key, None, "timeout"))
                    continue
                try:
                    results.append(PodScrape(key, future.result()))
                except ScrapeError as exc:
                    results.append(PodScrape(key, None, str(exc)))
            error = failed.get(variant)
            if not results and error is None:
                error = "no pod resolved"
            out[variant] = VariantScrape(results, error)
        return out

    def _scrape(self, url: str, auth) -> dict[str, float]:
        started = time.monotonic()
        try:
            response = self.session.get(url, timeout=self.timeout, auth=auth, stream=True,
                                        allow_redirects=False, headers={"Accept": ACCEPT})
        except requests.Timeout:
            raise ScrapeError("timeout") from None
        except requests.ConnectionError:
            raise ScrapeError("connection failed") from None
        except requests.RequestException:
            raise ScrapeError("request failed") from None
        with response:
            if response.status_code != 200:
                raise ScrapeError(f"HTTP {response.status_code}")
            body = bytearray()
            try:
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_EXPOSITION_BYTES:
                        raise ScrapeError("exposition larger than 32 MiB")
                    if time.monotonic() - started > self.timeout:
                        raise ScrapeError("timeout")
            except requests.RequestException:
                raise ScrapeError("connection broken") from None
        try:
            return exposition.parse(body.decode("utf-8", "replace"))
        except exposition.ExpositionError:
            raise ScrapeError("not a Prometheus exposition") from None


def _dns_error(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) and exc.errno in (socket.EAI_NONAME,
                                                          getattr(socket, "EAI_NODATA", -5)):
        return "DNS: name not found"
    return "DNS lookup failed"
