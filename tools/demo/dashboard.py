"""The dashboard service as a demo child beside the proxies, and screenshots of its page.

`make demo` runs it pointed at the stack's pods and writes the screenshots to out/demo/. It is a
`Child` like every other process of the demo (its own process group, stopped with the stack,
told to stop should the demo die); tests and benchmarks use tools/dashboard_process.py instead.
`build_ui()` and `screenshots()` serve the browser tests and the benchmark too. The service runs
exactly as in the image:
`gunicorn -c dashboard/gunicorn.conf.py 'zai_dashboard.app:create_app()'`, configured only
through its DASHBOARD_* environment; its UI is the build in dashboard/ui/dist (`make ui`).

    service = DashboardService(workdir, {"production": [url, ...], "canary": [url]}, interval="1s")
    service.start(); service.url; service.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tools import built_tools
from tools.demo.pods import free_port
from tools.demo.processes import Child

ROOT = Path(__file__).resolve().parents[2]
UI_DIST = ROOT / "dashboard" / "ui" / "dist"


def build_ui() -> None:
    """`make ui`: npm ci from the lockfile when needed, and a build only when a source changed."""
    built_tools.require("the dashboard UI")
    result = subprocess.run(["make", "-s", "ui"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0 or not (UI_DIST / "index.html").is_file():
        raise RuntimeError(f"make ui failed ({result.returncode}):\n{result.stdout[-3000:]}"
                           f"\n{result.stderr[-3000:]}")


def targets_value(targets: dict[str, list[str]]) -> str:
    """DASHBOARD_TARGETS: `production=URL,URL;canary=URL`, each URL a pod's /metrics."""
    return ";".join(f"{variant}={','.join(urls)}" for variant, urls in targets.items())


class DashboardService:
    def __init__(self, workdir: Path, targets: dict[str, list[str]], interval: str = "5s",
                 verdict_window: str | None = None, port: int | None = None, **env: str):
        self.dir = Path(workdir) / "dashboard"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "service.log"
        self.env = {
            "PATH": os.environ["PATH"],
            "DASHBOARD_TARGETS": targets_value(targets),
            "DASHBOARD_PORT": str(self.port),
            "DASHBOARD_DB_PATH": str(self.dir / "dashboard.db"),
            "DASHBOARD_SCRAPE_INTERVAL": interval,
        }
        if verdict_window:
            self.env["DASHBOARD_VERDICT_WINDOW"] = verdict_window
        self.env.update({k: str(v) for k, v in env.items()})
        self.child: Child | None = None

    def start(self, timeout: float = 30.0) -> "DashboardService":
        self.child = Child(
            "dashboard",
            [sys.executable, "-m", "gunicorn", "-c", "dashboard/gunicorn.conf.py",
             "zai_dashboard.app:create_app()"],
            self.log, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise RuntimeError(f"the dashboard service exited with {self.child.proc.returncode}:"
                                   f"\n{self.log_text()[-3000:]}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the dashboard service was not ready in {timeout:.0f} s:\n"
                           f"{self.log_text()[-3000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.child is not None:
            self.child.stop(timeout=timeout, sig=signal.SIGTERM)
            self.child = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _ready_for_screenshot(page, variants: list[str], min_points: int) -> bool:
    from tools import browser
    report = browser.chart_report(page)
    if not report or "requests" not in report["charts"]:
        return False
    if page.locator("[data-testid=verdict][data-verdict]").count() == 0:
        return False
    if page.get_attribute("[data-testid=freshness]", "data-stale") != "false":
        return False
    drawn = {s["label"].split(" ")[0]: s["points"] for s in report["charts"]["requests"]["series"]}
    return all(drawn.get(v, 0) >= min_points for v in variants)


def screenshots(url: str, out_dir: Path, variants: list[str], range_: str = "5m",
                min_points: int = 5, timeout: float = 60.0) -> list[Path]:
    """The page in both themes once every variant has `min_points` buckets drawn:
    `dashboard.png` (the first screen: verdict, status bar, first charts) and
    `dashboard-light.png` / `dashboard-dark.png` (the whole page)."""
    from playwright.sync_api import sync_playwright

    from tools import browser

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        try:
            context = chromium.new_context(viewport=browser.VIEWPORT)
            guard = browser.LoopbackGuard().install(context)
            page = context.new_page()
            for theme in ("light", "dark"):
                page.goto(f"{url}/?range={range_}&theme={theme}")
                browser.wait_until(page, lambda: _ready_for_screenshot(page, variants, min_points),
                                   timeout, f"both variants drawn ({theme} theme)")
                page.wait_for_timeout(300)  # let the last tick's redraw settle
                if theme == "light":
                    path = out_dir / "dashboard.png"
                    page.screenshot(path=path)
                    written.append(path)
                path = out_dir / f"dashboard-{theme}.png"
                page.screenshot(path=path, full_page=True)
                written.append(path)
            if guard.blocked:
                raise RuntimeError(f"the page asked for non-loopback URLs: {guard.blocked}")
        finally:
            chromium.close()
    return written
