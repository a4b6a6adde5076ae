"""The real image: image/Dockerfile built with buildah and its CMD run with `buildah run` (issue 7).

The build goes through scripts/build-image.sh (offline Debian base, chroot isolation) and is
reused while image/ and the base are unchanged. Needs root, as CI runs it: buildah's chroot
isolation and debootstrap both do. Chroot isolation shares the host's network, so the proxy in
the container answers on a loopback port; a dead HTTP(S) proxy in its environment makes any
download attempt (tiktoken's blob host) fail instead of quietly succeeding.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tools.proxy_process import free_port

ROOT = Path(__file__).resolve().parent.parent
USER_ID = 10001
CMD = ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
DEAD_PROXY = "http://127.0.0.1:9"
OFFLINE_ENV = {name: DEAD_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                             "https_proxy")}
# A cold build (debootstrap, pip, the litellm wheel) takes a few minutes on a slow mirror.
pytestmark = pytest.mark.timeout(1800)


def buildah(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"buildah {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


class Container:
    """A working container of the image; each check starts from a fresh one."""

    def __init__(self, image: str):
        self.name = f"zai-proxy-test-{uuid.uuid4().hex[:12]}"
        buildah("from", "--quiet", "--name", self.name, image)

    def command(self, argv, env=None, user=None, tmpfs_tmp=False) -> list[str]:
        flags = ["--isolation", "chroot"]
        if user is not None:
            flags += ["--user", user]
        if tmpfs_tmp:
            # As in the chart: an emptyDir at /tmp is the only place the proxy writes.
            flags += ["--mount", "type=tmpfs,destination=/tmp"]
        for key, value in (env or {}).items():
            flags += ["--env", f"{key}={value}"]
        return ["buildah", "run", *flags, self.name, "--", *argv]

    def run(self, argv, prefix=(), timeout=120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *self.command(argv, **kw)], capture_output=True,
                              text=True, timeout=timeout)

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=60)


class Image:
    def __init__(self, ref: str, info: dict):
        self.ref = ref
        self.config = info["OCIv1"]["config"]
        self.env = dict(item.split("=", 1) for item in self.config.get("Env", []))
        self.labels = self.config.get("Labels", {})


class Served:
    """The image's CMD (or another command of it) running in a container, reached over the
    shared network."""

    def __init__(self, image: Image, log_dir: Path, argv: list[str] | None = None,
                 port_var: str = "PORT", **env: str):
        self.container = Container(image.ref)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = log_dir / f"image-{self.port}.stderr"
        self.stdout_path = log_dir / f"image-{self.port}.stdout"
        self.argv = argv or image.config["Cmd"]
        env = {"ZAI_API_KEY": "dummy", port_var: str(self.port), **env}
        self.proc = subprocess.Popen(
            self.container.command(self.argv, env=env, tmpfs_tmp=True),
            stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"))
        self.seen: dict[int, psutil.Process] = {}

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        """gunicorn's and the proxy's JSON log lines."""
        return self.stdout_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"CMD exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass    # not listening yet, or listening while its workers still boot
            time.sleep(0.1)
        raise AssertionError(f"/readyz never answered 200:\n{self.stderr()}")

    def gunicorn(self) -> tuple[psutil.Process, list[psutil.Process]]:
        """(master, workers): the python processes under `buildah run` that run the CMD."""
        found = []
        for proc in psutil.Process(self.proc.pid).children(recursive=True):
            self.seen[proc.pid] = proc
            try:
                if "python" in os.path.basename(proc.cmdline()[0]) and self.argv[-1] in proc.cmdline():
                    found.append(proc)
            except (psutil.NoSuchProcess, IndexError):
                pass
        pids = {proc.pid for proc in found}
        masters = [proc for proc in found if proc.ppid() not in pids]
        assert len(masters) == 1, f"expected one gunicorn master, found {found}"
        return masters[0], [proc for proc in found if proc.ppid() in pids]

    def stop(self) -> None:
        """SIGTERM to gunicorn's master (a graceful stop); anything left is killed by pid."""
        if self.proc.poll() is None:
            try:
                self.gunicorn()[0].send_signal(signal.SIGTERM)
                self.proc.wait(30)
            except (AssertionError, psutil.NoSuchProcess, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        for proc in self.seen.values():
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self.container.remove()


@pytest.fixture(scope="module")
def image():
    assert os.geteuid() == 0, "the image check needs root (buildah chroot isolation, debootstrap)"
    assert shutil.which("buildah"), "buildah is missing: run `make tools`"
    result = subprocess.run(["bash", "scripts/build-image.sh", "--reuse"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"build failed:\n{result.stderr[-4000:]}"
    tag = result.stdout.strip().splitlines()[-1]
    info = json.loads(buildah("inspect", "--type", "image", tag))
    # Held by image id: a concurrent build that retags cannot take the image away mid-test.
    holder = Container(info["FromImageID"])
    yield Image(info["FromImageID"], info)
    holder.remove()


@pytest.fixture(scope="module")
def canary(image, tmp_path_factory):
    """The canary variant with token counting on (it loads the tiktoken encoding at start)."""
    served = Served(image, tmp_path_factory.mktemp("image"), DEPLOYMENT_VARIANT="canary",
                    TOKEN_COUNTING_ENABLED="true", **OFFLINE_ENV)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(ROOT / ".venv/bin/hadolint"), "--failure-threshold", "style",
                             str(ROOT / "image/Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_bakes_the_same_tiktoken_files_as_the_local_cache():
    # One litellm pin and one set of file names for the image and for `make tiktoken-cache`.
    dockerfile = (ROOT / "image/Dockerfile").read_text()
    script = (ROOT / "scripts/tiktoken_cache.py").read_text()
    pin = re.search(r'^LITELLM_VERSION = "([^"]+)"', script, re.M).group(1)
    assert f"ARG LITELLM_VERSION={pin}\n" in dockerfile
    for name in re.findall(r'"([0-9a-f]{40})"', script):
        assert name in dockerfile


def test_image_config_runs_the_cmd_as_the_non_root_user(image):
    config = image.config
    assert config["Cmd"] == CMD
    assert not config.get("Entrypoint")
    assert config["WorkingDir"] == "/app"
    assert config["User"] == f"{USER_ID}:{USER_ID}"
    assert "8080/tcp" in config["ExposedPorts"]
    assert image.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert image.env["PYTHONUNBUFFERED"] == "1"
    assert image.env["TIKTOKEN_CACHE_DIR"] == "/opt/tiktoken"
    # A container listens on every interface (the proxy alone: loopback) and has one master, so
    # one fixed metrics folder in /tmp, wiped at each start, leaves nothing behind on restarts.
    assert image.env["BIND_HOST"] == "0.0.0.0"
    assert image.env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/zai-proxy-metrics"
    assert image.env["DASHBOARD_BIND_HOST"] == "0.0.0.0"   # the dashboard command, in a pod
    from zai_proxy.config import VERSION
    assert image.env["ZAI_PROXY_VERSION"] == image.labels["org.opencontainers.image.version"] \
        == VERSION
    assert image.env["ZAI_PROXY_COMMIT"] == image.labels["org.opencontainers.image.revision"]
    assert image.env["ZAI_PROXY_COMMIT"] not in ("", "unknown")
    assert image.env["ZAI_PROXY_BUILD_TIME"] == image.labels["org.opencontainers.image.created"]
    assert image.labels["org.opencontainers.image.source"].startswith("https://")


def test_user_owns_nothing_and_can_write_only_the_temp_dirs(image):
    container = Container(image.ref)
    try:
        owned = container.run(["find", "/", "-xdev", "(", "-user", str(USER_ID), "-o", "-group",
                               str(USER_ID), ")"], user="0:0")
        assert owned.returncode == 0, owned.stderr
        assert owned.stdout.split() == []
        # Only the base's shared temp dirs (world-writable and sticky, as in any Debian image).
        writable = container.run(["find", "/", "-xdev", "-writable", "!", "-type", "l",
                                  "-printf", "%m %p\n"])
        modes = dict(reversed(line.split(" ", 1)) for line in writable.stdout.splitlines())
        assert "/tmp" in modes and set(modes.values()) == {"1777"}, modes
        # Byte-compiled at build time, since the user cannot write a __pycache__ at run time.
        compiled = container.run(["python3", "-c", "import importlib.util as u, os; "
                                  "print(os.path.exists(u.cache_from_source('/app/app.py')))"])
        assert compiled.stdout.strip() == "True", compiled.stderr
    finally:
        container.remove()


def test_tiktoken_encodings_are_baked_and_load_without_any_network(image):
    # `unshare --net` gives `buildah run` a network namespace with no route anywhere.
    code = ("import errno, socket, tiktoken\n"
            "try:\n"
            "    socket.create_connection(('1.1.1.1', 443), timeout=2)\n"
            "    raise SystemExit('network reachable')\n"
            "except OSError as exc:\n"
            "    assert exc.errno == errno.ENETUNREACH, exc\n"
            "print(tiktoken.get_encoding('cl100k_base').encode('hello world'),\n"
            "      tiktoken.get_encoding('o200k_base').encode('hello world'))\n")
    container = Container(image.ref)
    try:
        result = container.run(["python3", "-c", code], prefix=["unshare", "--net"])
    finally:
        container.remove()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[15339, 1917] [24912, 2375]"


def test_cmd_serves_readyz_and_metrics_with_the_baked_build_info(canary, image):
    assert requests.get(canary.url + "/readyz", timeout=5).status_code == 200
    assert requests.get(canary.url + "/livez", timeout=5).status_code == 200
    response = requests.get(canary.url + "/metrics", timeout=5, allow_redirects=False)
    assert response.status_code == 200
    samples = [sample for family in text_string_to_metric_families(response.text)
               for sample in family.samples if sample.name == "zai_proxy_build_info"]
    assert [(sample.labels, sample.value) for sample in samples] == [({
        "version": image.env["ZAI_PROXY_VERSION"],
        "commit": image.env["ZAI_PROXY_COMMIT"],
        "build_time": image.env["ZAI_PROXY_BUILD_TIME"],
        "variant": "canary",
    }, 1.0)]


def test_cmd_runs_as_uid_10001_from_the_app_dir(canary):
    master, workers = canary.gunicorn()
    assert len(workers) == 1  # WEB_CONCURRENCY default
    # The image's CMD, found on the venv's PATH; no wrapper in between.
    assert master.cmdline() == ["/opt/venv/bin/python3", "/opt/venv/bin/gunicorn", *CMD[1:]]
    for proc in (master, *workers):
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        assert fields["Uid"].split() == [str(USER_ID)] * 4
        assert fields["Gid"].split() == [str(USER_ID)] * 4
        assert "0" not in fields["Groups"].split()
        assert proc.cwd().endswith("/app")


def test_cmd_starts_without_errors(canary):
    lines = canary.stdout().splitlines()
    assert any('"Booting worker' in line for line in lines)   # the log really is read
    starts = [json.loads(line) for line in lines if '"event": "start"' in line]
    assert [(start["listen"], start["metrics_dir"]) for start in starts] == [
        (f"0.0.0.0:{canary.port}", "/tmp/zai-proxy-metrics")]
    assert "client auth off; token counting on" in starts[0]["msg"]
    errors = [line for line in lines + canary.stderr().splitlines()
              if '"level": "error"' in line or "[ERROR]" in line or "Traceback" in line]
    assert errors == []


def test_counting_fails_to_start_without_the_baked_cache(image, tmp_path):
    # The control for the canary above: with the cache pointed elsewhere and no network, the
    # same start fails, so the canary's 200 can only come from the baked files.
    served = Served(image, tmp_path, TOKEN_COUNTING_ENABLED="true",
                    TIKTOKEN_CACHE_DIR="/tmp/no-cache", **OFFLINE_ENV)
    try:
        assert served.proc.wait(60) != 0
        assert "TIKTOKEN_CACHE_DIR='/tmp/no-cache' does not hold tiktoken's cl100k_base file" \
            in served.stderr()
    finally:
        served.stop()


def test_cmd_refuses_to_start_without_a_key(image):
    container = Container(image.ref)
    try:
        result = container.run(image.config["Cmd"], tmpfs_tmp=True)
    finally:
        container.remove()
    assert result.returncode == 2
    assert "ZAI_API_KEY (or ZAI_API_KEY_FILE) must be set" in result.stderr


# -- the dashboard service: the same image, a second command -----------------------------------
DASHBOARD_CMD = ["gunicorn", "-c", "/app/dashboard/gunicorn.conf.py",
                 "zai_dashboard.app:create_app()"]


@pytest.fixture(scope="module")
def dashboard(image, canary, tmp_path_factory):
    """The dashboard command, scraping the canary container's proxy (as both variants)."""
    targets = f"production={canary.url}/metrics;canary={canary.url}/metrics"
    served = Served(image, tmp_path_factory.mktemp("dashboard"), argv=DASHBOARD_CMD,
                    port_var="DASHBOARD_PORT", DASHBOARD_TARGETS=targets,
                    DASHBOARD_SCRAPE_INTERVAL="1s", DASHBOARD_BIND_HOST="127.0.0.1",
                    DASHBOARD_DB_PATH="/tmp/dashboard/dashboard.db", **OFFLINE_ENV)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def test_the_dashboard_command_serves_its_api_page_and_stream(dashboard, image):
    config = requests.get(dashboard.url + "/api/config", timeout=5).json()
    assert config["version"] == image.env["ZAI_PROXY_VERSION"]
    assert config["variants"] == ["production", "canary"]
    status = requests.get(dashboard.url + "/api/status", timeout=5).json()
    assert status["storage"] == {"state": "ok", "path_ok": True, "reset": None}
    assert {v: s["state"] for v, s in status["variants"].items()} == {
        "production": "up", "canary": "up"}
    assert status["variants"]["canary"]["build"]["commit"] == image.env["ZAI_PROXY_COMMIT"]
    metrics = requests.get(dashboard.url + "/metrics", timeout=5).text
    assert (f'zai_dashboard_build_info{{commit="{image.env["ZAI_PROXY_COMMIT"]}",'
            f'version="{image.env["ZAI_PROXY_VERSION"]}"}} 1.0') in metrics
    page = requests.get(dashboard.url + "/", timeout=5)
    assert page.status_code == 200
    if (ROOT / "dashboard/ui/package.json").exists():
        # build-image.sh builds the UI first: the image serves it, no external URL in it.
        assert '<div id="root">' in page.text or "id=root" in page.text
        assert "http://" not in page.text and "https://" not in page.text
    else:
        assert "The dashboard UI is not built" in page.text
    with requests.get(dashboard.url + "/api/events", stream=True, timeout=5) as stream:
        lines = (line for line in stream.iter_lines(decode_unicode=True) if line)
        assert [next(lines), next(lines)] == ["retry: 3000", "event: hello"]


def test_the_dashboard_runs_one_process_as_uid_10001_without_errors(dashboard):
    master, workers = dashboard.gunicorn()
    assert len(workers) == 1      # one collector, one SQLite writer
    assert master.cmdline() == ["/opt/venv/bin/python3", "/opt/venv/bin/gunicorn",
                                *DASHBOARD_CMD[1:]]
    for proc in (master, *workers):
        fields = dict(line.split(":", 1)
                      for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
        assert fields["Uid"].split() == [str(USER_ID)] * 4
    lines = dashboard.stdout().splitlines() + dashboard.stderr().splitlines()
    assert any('"Booting worker' in line for line in lines)
    assert [line for line in lines if '"level": "error"' in line or "Traceback" in line] == []


def test_the_dashboard_stops_cleanly_on_sigterm(dashboard):
    master, workers = dashboard.gunicorn()
    master.send_signal(signal.SIGTERM)
    assert dashboard.proc.wait(30) == 0
    assert not any(proc.is_running() for proc in (master, *workers))


def test_sigterm_to_the_cmd_stops_it_cleanly(canary):
    master, workers = canary.gunicorn()
    master.send_signal(signal.SIGTERM)
    assert canary.proc.wait(30) == 0
    assert not any(proc.is_running() for proc in (master, *workers))
