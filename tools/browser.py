"""Headless Chromium for the dashboard page: the browser tests, `make demo`'s screenshots and the
render benchmark share this.

The browser is Debian's `chromium` (scripts/install-tools.sh installs it) driven by PyPI
`playwright` through `executable_path`; `playwright install` is never run (it downloads a
browser, which cannot work offline). Every request the page makes to anything but loopback is
aborted and recorded (`LoopbackGuard`), so a CDN, a web font or a tracker shows up as a failure.

What was drawn is read from the page itself: `window.__zaiDashboard.charts` holds each chart's
uPlot instance, and `chart_report()` returns, per series, how many points it has and how many of
them have the series' stroke colour on the canvas right where uPlot put them.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}


def launch(playwright):
    """Debian's Chromium, headless, with no background network traffic of its own."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make tools` (scripts/install-tools.sh "
                           "installs Debian's chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


def is_loopback_url(url: str) -> bool:
    """True for http(s)/ws(s) URLs on 127.0.0.0/8, ::1 or localhost; data:/blob:/about: pass."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackGuard:
    """Aborts and records every request of a browser context that leaves loopback."""

    def __init__(self) -> None:
        self.blocked: list[str] = []

    def install(self, context) -> "LoopbackGuard":
        context.route("**/*", self._route)
        return self

    def _route(self, route) -> None:
        url = route.request.url
        if is_loopback_url(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")


class ConsoleLog:
    """Console errors and uncaught exceptions of a page, with the time each was seen."""

    def __init__(self, page) -> None:
        self.errors: list[tuple[float, str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append((time.monotonic(), f"pageerror: {exc}")))

    def _console(self, message) -> None:
        if message.type == "error":
            location = message.location or {}
            self.errors.append((time.monotonic(), f"{message.text} ({location.get('url', '')})"))


# Per chart and series: its label, points with a value, and how many of the last `sample`
# points have the series' colour on the canvas within 3 px of where uPlot placed them.
_CHART_REPORT_JS = """
(sample) => {
  const handle = window.__zaiDashboard;
  if (!handle) return null;
  const hex = (c) => {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c || "");
    return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : null;
  };
  const out = {};
  for (const [id, u] of Object.entries(handle.charts)) {
    const ctx = u.ctx;
    const width = ctx.canvas.width, height = ctx.canvas.height;
    const pixels = ctx.getImageData(0, 0, width, height).data;
    const near = (x, y, rgb) => {
      for (let dy = -3; dy <= 3; dy++) for (let dx = -3; dx <= 3; dx++) {
        const px = Math.round(x) + dx, py = Math.round(y) + dy;
        if (px < 0 || py < 0 || px >= width || py >= height) continue;
        const i = (py * width + px) * 4;
        if (pixels[i + 3] > 128 && Math.abs(pixels[i] - rgb[0]) < 40 &&
            Math.abs(pixels[i + 1] - rgb[1]) < 40 && Math.abs(pixels[i + 2] - rgb[2]) < 40) return true;
      }
      return false;
    };
    const xs = u.data[0];
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    const series = [];
    for (let s = 1; s < u.series.length; s++) {
      const spec = u.series[s];
      const ys = u.data[s];
      const rgb = hex(typeof spec.stroke === "function" ? spec.stroke(u, s) : spec._stroke || spec.stroke);
      const visible = [];
      for (let i = 0; i < xs.length; i++) {
        if (ys[i] != null && xs[i] >= xmin && xs[i] <= xmax) visible.push(i);
      }
      // Points where the line continues on both sides (an isolated point draws no segment).
      const inner = visible.filter((i) => ys[i - 1] != null || ys[i + 1] != null);
      const picked = inner.slice(-sample);
      let hits = 0;
      for (const i of picked) {
        if (rgb && near(u.valToPos(xs[i], "x", true), u.valToPos(ys[i], "y", true), rgb)) hits++;
      }
      series.push({ label: spec.label, points: visible.length, sampled: picked.length, hits,
                    dash: spec.dash || null, color: spec._stroke || spec.stroke || null });
    }
    out[id] = { series, xmin, xmax, drawnAt: handle.drawnAt[id] || null,
                width, height, last: xs.length ? xs[xs.length - 1] : null };
  }
  return { charts: out, loads: handle.loads };
}
"""


def chart_report(page, sample: int = 40) -> dict | None:
    """What each chart drew (see the module docstring); None before the app has started."""
    return page.evaluate(_CHART_REPORT_JS, sample)


def series_of(report: dict, chart: str, label: str) -> dict:
    for series in report["charts"][chart]["series"]:
        if series["label"] == label:
            return series
    raise KeyError(f"chart {chart!r} has no series {label!r}: "
                   f"{[s['label'] for s in report['charts'][chart]['series']]}")


def wait_until(page, predicate, timeout: float, what: str, poll: float = 0.2):
    """Polls `predicate()` until it returns something truthy; raises naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        page.wait_for_timeout(poll * 1000)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
