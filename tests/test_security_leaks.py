"""No secret leaks: canary secrets planted everywhere a secret goes, every path driven, every output
grepped.

The Z.AI key, the client keys, the admin token and the Redis password all carry one marker
(`CANARY`). One real gunicorn proxy (two workers, every optional feature on, Redis with a
password) is driven through success, every proxy-made error, 401s, retries, upstream faults,
client disconnects, /health, /metrics, the admin endpoint, a Redis outage and SIGTERM with a
stream in flight. Then every output of the run is searched for the marker and for encoded forms
of each secret: the proxy's stdout and stderr, every file it or Redis wrote, every response
status line, header and body a client got, /metrics and /health. A second proxy reads every
secret from files (`*_FILE`), a third meets a refused connection, and start-up errors are checked
too. The upstream must have received the Z.AI key (so the grep is not vacuous) and never a client
key, the admin token or the Redis password.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tools.fake_zai import FakeZai
from tools.fake_zai import quota as fake_quota
from tools.proxy_process import ProxyProcess, free_port
from tools.redis_server import redis_server_binary

# Token counting is on in the main run; tiktoken reads its files from the repo's offline cache
# (`make tiktoken-cache`), as under `make test`.
os.environ.setdefault("TIKTOKEN_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"))

MARKER = "CANARY"
ZAI_KEY = "zk-CANARY-zai-4f1d9b27c6e0a8"
CLIENT_KEYS = ("ck-CANARY-client-a1-93b7e2", "ck-CANARY-client-b2-5d08f1")
ADMIN_TOKEN = "at-CANARY-admin-71c4e9b0"
REDIS_PASSWORD = "rp-CANARY-redis-2e6a0d3f"
SECRETS = (ZAI_KEY, *CLIENT_KEYS, ADMIN_TOKEN, REDIS_PASSWORD)
CLIENT_SECRETS = (*CLIENT_KEYS, ADMIN_TOKEN, REDIS_PASSWORD)   # must never reach the upstream

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
QUOTA_SUFFIX = "/monitor/usage/quota/limit"


def needles(secret: str) -> list[bytes]:
    """Every form in which `secret` would be recognisable: raw, its random tail alone, URL-quoted,
    and base64 (standard and URL-safe, as in a Basic auth header or a JWT-ish dump)."""
    raw = secret.encode()
    forms = {raw, secret.rsplit("-", 1)[-1].encode(), quote(secret, safe="").encode(),
             base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")}
    return sorted(forms)


ALL_NEEDLES = [MARKER.encode(), MARKER.lower().encode()] + [n for s in SECRETS for n in needles(s)]


def leaks(data: bytes | str) -> list[str]:
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    return sorted({n.decode() for n in ALL_NEEDLES if n in data})


class Outputs:
    """Everything the run produced that a person or a system could read, by name."""

    def __init__(self):
        self.items: list[tuple[str, bytes]] = []
        self.statuses: dict[str, int] = {}

    def add(self, name: str, data: bytes | str) -> None:
        self.items.append((name, data.encode() if isinstance(data, str) else data))

    def response(self, name: str, response: requests.Response) -> requests.Response:
        head = f"HTTP {response.status_code} {response.reason}\n" + "".join(
            f"{k}: {v}\n" for k, v in response.headers.items())
        self.add(name, head.encode() + b"\n" + response.content)
        self.statuses[name] = response.status_code
        return response

    def files(self, prefix: str, root: Path, skip: set[Path] = frozenset()) -> int:
        count = 0
        for path in sorted(root.rglob("*")):
            if path.is_file() and path not in skip:
                self.add(f"{prefix}:{path.relative_to(root)}", path.read_bytes())
                count += 1
        return count

    def leaked(self) -> dict[str, list[str]]:
        return {name: found for name, data in self.items if (found := leaks(data))}


# -- Redis with a password -----------------------------------------------------------------------
class PasswordRedis:
    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.uri = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PasswordRedis":
        # The password goes in through stdin (a config read from "-"), so it is never on a
        # command line; the server's log file is grepped with everything else.
        self.proc = subprocess.Popen(
            [redis_server_binary(), "-", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--save", "", "--appendonly", "no",
             "--logfile", str(self.dir / "redis.log"), "--loglevel", "notice"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.stdin.write(f"requirepass {REDIS_PASSWORD}\n".encode())
        self.proc.stdin.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(f"AUTH {REDIS_PASSWORD}\r\nPING\r\n".encode())
                    answer = b""
                    while b"+PONG" not in answer and (part := sock.recv(100)):
                        answer += part
                    if b"+PONG" in answer:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server with a password did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# -- the run ---------------------------------------------------------------------------------------
def _client(key: str, form: str) -> dict:
    return {"Authorization": f"Bearer {key}"} if form == "bearer" else {"x-api-key": key}


def _chat(scenario: str = "ok", stream: bool = False, **extra) -> dict:
    body = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hello"}], **extra}
    body["model"] += "@" + scenario
    if stream:
        body["stream"] = True
    return body


def _anthropic(scenario: str = "ok", stream: bool = False) -> dict:
    body = {"model": "glm-4.7@" + scenario, "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello"}]}
    if stream:
        body["stream"] = True
    return body


def _drive_main(proxy: ProxyProcess, fake: FakeZai, redis: PasswordRedis, out: Outputs) -> None:
    url = proxy.url
    good = _client(CLIENT_KEYS[0], "bearer")
    good_x = _client(CLIENT_KEYS[1], "x-api-key")

    def call(name, method, path, headers=None, **kwargs):
        kwargs.setdefault("timeout", 30)
        return out.response(name, requests.request(method, url + path, headers=headers, **kwargs))

    # Success on both surfaces, both key forms, whole and streamed.
    call("chat ok", "POST", CHAT, good, json=_chat())
    call("chat ok x-api-key", "POST", CHAT, good_x, json=_chat())
    call("chat stream", "POST", CHAT, good, json=_chat(stream=True))
    call("chat stream with usage", "POST", CHAT, good,
         json=_chat(stream=True, stream_options={"include_usage": True}))
    call("messages ok", "POST", MESSAGES, good_x, json=_anthropic())
    call("messages stream", "POST", MESSAGES, good, json=_anthropic(stream=True))
    call("count_tokens", "POST", MESSAGES + "/count_tokens", good, json=_anthropic())
    call("models", "GET", "/v1/models", good)
    call("embeddings", "POST", "/v1/embeddings", good, json={"model": "embedding-3", "input": "x"})
    call("api passthrough", "POST", "/api/paas/v4/chat/completions", good, json=_chat())
    call("api anthropic", "POST", "/api/anthropic/v1/messages", good, json=_anthropic())
    call("echo other path", "GET", "/v1/files?purpose=x", good)

    # 401s: missing, wrong (each form), a client key sent as the admin token and vice versa.
    call("401 missing", "POST", CHAT, json=_chat())
    call("401 wrong bearer", "POST", CHAT, _client("wrong-key", "bearer"), json=_chat())
    call("401 wrong x-api-key", "POST", MESSAGES, _client("wrong-key", "x-api-key"),
         json=_anthropic())
    call("401 admin token as client key", "POST", CHAT, _client(ADMIN_TOKEN, "bearer"),
         json=_chat())
    call("401 basic auth", "POST", CHAT, {"Authorization": "Basic " + base64.b64encode(
        f"user:{CLIENT_KEYS[0]}".encode()).decode()}, json=_chat())

    # Every error the proxy makes itself.
    call("404 route", "GET", "/nowhere", good)
    call("400 path", "GET", "/api/paas/v4/a/%2e%2e/b", good)
    call("405 method", "TRACE", CHAT, good)
    call("400 invalid json", "POST", CHAT, {**good, "Content-Type": "application/json"},
         data=b'{"model": ')
    call("400 invalid utf-8", "POST", CHAT, {**good, "Content-Type": "application/json"},
         data=b'{"model": "\xff\xfe"}')
    call("400 not an object", "POST", MESSAGES, good, json=[1, 2])
    call("415 content type", "POST", CHAT, {**good, "Content-Type": "text/plain"}, data=b"hi")
    call("413 too large", "POST", CHAT, {**good, "Content-Type": "application/json"},
         data=b"x" * 70_000)

    # Upstream faults and Z.AI errors (retried ones included), both surfaces.
    for spec in ("error;code=1302", "error;code=1303;retry_after=0", "error;code=1308",
                 "error;code=1001", "error;code=1113;envelope=flat", "error;code=1214",
                 "status;code=503", "status;code=500;body=html", "status;code=502;body=empty",
                 "reset_before", "reset_mid", "truncated_json", "empty_200", "stall",
                 "fail_first;n=1;key=leaks;fail_with=reset_before"):
        call(f"chat {spec}", "POST", CHAT, good, json=_chat(spec))
        call(f"chat stream {spec}", "POST", CHAT, good, json=_chat(spec, stream=True))
        call(f"messages {spec}", "POST", MESSAGES, good_x, json=_anthropic(spec))
    for spec in ("stream_error", "reset_mid;after=2", "stall;after=2", "drip;chunks=3;byte_interval_ms=1;bytes_per_write=64"):
        call(f"chat stream {spec}", "POST", CHAT, good, json=_chat(spec, stream=True))
        call(f"messages stream {spec}", "POST", MESSAGES, good, json=_anthropic(spec, stream=True))

    # A client that leaves in the middle of a stream.
    with requests.post(url + CHAT, headers=good, stream=True, timeout=30,
                       json=_chat("ok;chunks=20;interval_ms=50", stream=True)) as response:
        first = next(response.iter_content(64))
        out.add("disconnect: first bytes", first)
        out.add("disconnect: headers", str(dict(response.headers)))

    # Admin: no token, a wrong one, a client key, the right one.
    call("admin missing", "POST", "/admin/reset-rate-limit")
    call("admin wrong", "POST", "/admin/reset-rate-limit", {"Authorization": "Bearer nope"})
    call("admin client key", "POST", "/admin/reset-rate-limit", good)
    call("admin ok", "POST", "/admin/reset-rate-limit", {"Authorization": f"Bearer {ADMIN_TOKEN}"})

    # The quota poller: a good sample, then the quota endpoint failing.
    deadline = time.monotonic() + 10
    while not fake.requests_to(QUOTA_SUFFIX) and time.monotonic() < deadline:
        time.sleep(0.1)
    fake.set_scenario("status;code=500", path_suffix=QUOTA_SUFFIX)
    polled = len(fake.requests_to(QUOTA_SUFFIX))
    while len(fake.requests_to(QUOTA_SUFFIX)) <= polled and time.monotonic() < deadline + 5:
        time.sleep(0.1)

    # A Redis outage, requests through it, and Redis back.
    redis.stop()
    call("chat during redis outage", "POST", CHAT, good, json=_chat())
    call("health during redis outage", "GET", "/health")
    redis.start()
    call("chat after redis", "POST", CHAT, good, json=_chat())

    for path in ("/health", "/livez", "/readyz", "/metrics"):
        call(f"GET {path}", "GET", path)
        call(f"GET {path} with key", "GET", path, good)

    # SIGTERM with a stream in flight: it finishes; meanwhile new work and /readyz get 503.
    streamed = {}

    def slow_stream():
        streamed["r"] = requests.post(url + CHAT, headers=good, timeout=30,
                                      json=_chat("ok;chunks=10;interval_ms=100", stream=True))

    thread = threading.Thread(target=slow_stream)
    thread.start()
    time.sleep(0.3)
    proxy.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    for name, method, path, body in (("draining chat", "POST", CHAT, _chat()),
                                     ("draining readyz", "GET", "/readyz", None),
                                     ("draining health", "GET", "/health", None),
                                     ("draining metrics", "GET", "/metrics", None)):
        try:
            call(name, method, path, good, json=body)
        except requests.ConnectionError:
            pass    # a worker that already stopped accepting: nothing was said, nothing leaked
    thread.join(30)
    out.response("stream during SIGTERM", streamed["r"])
    proxy.proc.wait(30)


pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def leak_run(tmp_path_factory):
    """The whole run, once; each test below asserts on one part of what it produced."""
    root = tmp_path_factory.mktemp("leaks")
    out = Outputs()
    with FakeZai() as fake:
        fake.set_quota(fake_quota.default_payload())
        redis = PasswordRedis(root / "redis").start()
        try:
            proxy = ProxyProcess(
                root, fake.url, ZAI_API_KEY=ZAI_KEY, PROXY_API_KEYS=",".join(CLIENT_KEYS),
                ADMIN_TOKEN=ADMIN_TOKEN, RATE_LIMIT_STORAGE_URI=redis.uri,
                RATE_LIMIT_ENABLED="true", RATE_LIMIT_INITIAL="50", RATE_LIMIT_MAX="50",
                TOKEN_COUNTING_ENABLED="true", QUOTA_POLL_ENABLED="true",
                QUOTA_POLL_INTERVAL="1s", WEB_CONCURRENCY="2", MAX_WORKERS="8",
                MAX_RETRIES="2", MAX_REQUEST_BYTES="65536", UPSTREAM_READ_TIMEOUT="500ms",
                LOG_LEVEL="debug").start()
            _drive_main(proxy, fake, redis, out)
        finally:
            redis.stop()
        main_requests = fake.requests
        fake.clear()

        # Second proxy: every secret from a file (the chart mounts Secrets this way).
        secret_dir = root / "secrets"
        secret_dir.mkdir()
        files = {}
        for name, value in (("ZAI_API_KEY", ZAI_KEY), ("PROXY_API_KEYS", ",".join(CLIENT_KEYS)),
                            ("ADMIN_TOKEN", ADMIN_TOKEN)):
            files[name] = secret_dir / name.lower()
            files[name].write_text(value + "\n")
        with ProxyProcess(root, fake.url, ZAI_API_KEY="",
                          **{f"{k}_FILE": str(v) for k, v in files.items()}) as filed:
            good = _client(CLIENT_KEYS[1], "bearer")
            for name, method, path, headers, body in (
                    ("file: chat ok", "POST", CHAT, good, _chat()),
                    ("file: messages stream", "POST", MESSAGES, good, _anthropic(stream=True)),
                    ("file: chat 1302", "POST", CHAT, good, _chat("error;code=1302")),
                    ("file: 401", "POST", CHAT, {"x-api-key": "nope"}, _chat()),
                    ("file: admin wrong", "POST", "/admin/reset-rate-limit",
                     {"Authorization": "Bearer nope"}, None),
                    ("file: admin ok", "POST", "/admin/reset-rate-limit",
                     {"Authorization": f"Bearer {ADMIN_TOKEN}"}, None),
                    ("file: health", "GET", "/health", None, None),
                    ("file: metrics", "GET", "/metrics", None, None)):
                out.response(name, requests.request(method, filed.url + path, headers=headers,
                                                    json=body, timeout=30))
        file_requests = fake.requests

    # Third proxy: nothing listens upstream (connection refused, retried, then 502).
    with ProxyProcess(root, f"http://127.0.0.1:{free_port()}", ZAI_API_KEY=ZAI_KEY,
                      PROXY_API_KEYS=CLIENT_KEYS[0], MAX_RETRIES="1") as refused:
        out.response("refused: chat", requests.post(
            refused.url + CHAT, headers=_client(CLIENT_KEYS[0], "bearer"), json=_chat(),
            timeout=30))
        out.response("refused: messages stream", requests.post(
            refused.url + MESSAGES, headers=_client(CLIENT_KEYS[0], "x-api-key"),
            json=_anthropic(stream=True), timeout=30))

    # Start-up failures with every secret set: the error names variables, never values.
    for name, env in (
            ("bad storage uri", {"RATE_LIMIT_STORAGE_URI": f"ftp://:{REDIS_PASSWORD}@h:1/0"}),
            ("bad number", {"MAX_WORKERS": "many"}),
            ("missing key file", {"ZAI_API_KEY_FILE": str(root / "absent")})):
        failing = ProxyProcess(root, "http://127.0.0.1:9", ZAI_API_KEY=ZAI_KEY,
                               PROXY_API_KEYS=",".join(CLIENT_KEYS), ADMIN_TOKEN=ADMIN_TOKEN,
                               **env)
        with pytest.raises(RuntimeError):
            failing.start(timeout=15)
        out.statuses[f"startup: {name}"] = failing.proc.returncode

    out.files("tmp", root, skip=set(files.values()))
    return {"out": out, "main_requests": main_requests, "file_requests": file_requests,
            "main_port": proxy.port}


# -- the assertions --------------------------------------------------------------------------------
def test_the_run_drove_every_path(leak_run):
    """The grep is only worth something if the paths really ran: check the answers they got."""
    statuses = leak_run["out"].statuses
    expected = {
        "chat ok": 200, "chat stream": 200, "messages ok": 200, "messages stream": 200,
        "401 missing": 401, "401 wrong bearer": 401, "401 wrong x-api-key": 401,
        "401 admin token as client key": 401, "401 basic auth": 401,
        "404 route": 404, "400 path": 400, "405 method": 405, "400 invalid json": 400,
        "400 invalid utf-8": 400, "415 content type": 415, "413 too large": 413,
        "chat error;code=1302": 429, "chat error;code=1308": 429, "chat error;code=1001": 502,
        "chat status;code=503": 503, "chat reset_before": 502, "chat truncated_json": 502,
        "chat fail_first;n=1;key=leaks;fail_with=reset_before": 200,
        "chat stream stream_error": 200, "chat stream reset_mid;after=2": 200,
        "admin missing": 401, "admin wrong": 401, "admin client key": 401, "admin ok": 200,
        "chat during redis outage": 200, "chat after redis": 200,
        "GET /health": 200, "GET /metrics": 200, "stream during SIGTERM": 200,
        "file: chat ok": 200, "file: messages stream": 200, "file: 401": 401,
        "file: admin wrong": 401, "file: admin ok": 200,
        "refused: chat": 502, "refused: messages stream": 502,
        "startup: bad storage uri": 2, "startup: bad number": 2, "startup: missing key file": 2,
    }
    assert {name: statuses.get(name) for name in expected} == expected
    # Headers then silence: 504 when the idle timeout hits before the status line, 502
    # (truncated_response) when it hits inside the body; both are well-formed.
    assert statuses["chat stall"] in (502, 504)
    if "draining chat" in statuses:   # reached a still-draining worker
        assert statuses["draining chat"] == 503
    texts = dict(leak_run["out"].items)
    assert b"data: [DONE]" in texts["stream during SIGTERM"]


def test_the_upstream_received_the_zai_key(leak_run):
    """Without this, a grep that finds nothing could mean the key was never used at all."""
    proxied = [r for r in leak_run["main_requests"] + leak_run["file_requests"]
               if not r.path.endswith(QUOTA_SUFFIX)]
    quota = [r for r in leak_run["main_requests"] if r.path.endswith(QUOTA_SUFFIX)]
    assert len(proxied) > 50 and quota
    for record in proxied:
        if "/anthropic/" in record.path:
            assert record.headers.get("x-api-key") == ZAI_KEY, record.path
            assert "Authorization" not in record.headers
        else:
            assert record.headers.get("Authorization") == f"Bearer {ZAI_KEY}", record.path
            assert "x-api-key" not in record.headers
    for record in quota:
        assert record.headers.get("Authorization") == ZAI_KEY


def test_the_upstream_never_received_a_client_secret(leak_run):
    for record in leak_run["main_requests"] + leak_run["file_requests"]:
        seen = (record.method + record.path + record.query).encode() + record.body + b"".join(
            name + b": " + value + b"\n" for name, value in record.raw_headers)
        for secret in CLIENT_SECRETS:
            for needle in needles(secret):
                assert needle not in seen, f"{secret} reached the upstream in {record.path}"


def test_no_secret_in_any_response_header_or_body(leak_run):
    out = leak_run["out"]
    responses = [name for name, _ in out.items if not name.startswith("tmp:")]
    assert len(responses) > 100
    leaked = {name: found for name, found in out.leaked().items() if not name.startswith("tmp:")}
    assert leaked == {}


def test_no_secret_in_the_logs(leak_run):
    out = leak_run["out"]
    logs = [(name, data) for name, data in out.items
            if name.startswith("tmp:") and name.endswith(".log")]
    names = {name for name, _ in logs}
    # stdout (JSON request lines, warnings, tracebacks), stderr (gunicorn) of every proxy, Redis.
    assert sum(name.endswith("stdout.log") for name in names) == 6
    assert sum(name.endswith("stderr.log") for name in names) == 6
    assert "tmp:redis/redis.log" in names
    main_stdout = dict(logs)[f"tmp:proxy-{leak_run['main_port']}/stdout.log"]
    assert main_stdout.count(b'"msg": "request"') > 80   # the request lines really were written
    assert {name: found for name, data in logs if (found := leaks(data))} == {}


def test_no_secret_in_any_file_the_run_wrote(leak_run):
    """Metrics .db files, the controller's state file, Redis's directory: everything but the
    secret files the proxy was given."""
    out = leak_run["out"]
    files = [name for name, _ in out.items if name.startswith("tmp:")]
    assert any("/metrics/" in name and name.endswith(".db") for name in files)
    leaked = {name: found for name, found in out.leaked().items() if name.startswith("tmp:")}
    assert leaked == {}


def test_a_zai_key_that_cannot_be_sent_never_reaches_a_log(tmp_path, fake_zai):
    """A key file holding a second line (e.g. a pasted note) keeps an inner line break after the
    trim. requests refuses such a header value and quotes it in its exception; the proxy must
    either refuse to start (naming the variable, not the value) or answer without writing it."""
    key_file = tmp_path / "zai-key"
    key_file.write_text(ZAI_KEY + "\nrotated on 2026-11-01 by ops\n")
    proxy = ProxyProcess(tmp_path, fake_zai.url, ZAI_API_KEY="", ZAI_API_KEY_FILE=str(key_file))
    try:
        proxy.start(timeout=15)
    except RuntimeError:
        assert proxy.proc.returncode == 2
        assert "ZAI_API_KEY" in proxy.stderr()
    else:
        try:
            response = requests.post(proxy.url + CHAT, json=_chat(), timeout=30)
            assert leaks(response.content) == []
        finally:
            proxy.stop()
    assert leaks(proxy.stdout()) == []
    assert leaks(proxy.stderr()) == []
