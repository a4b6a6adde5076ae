"""Label cardinality stays bounded: 10,000 random paths and 10,000 random model names (with random
methods, headers, source addresses and upstream answers) through the real gunicorn proxy.

`make reliability` runs the full 10,000 of each (ZAI_PROXY_CARDINALITY_REQUESTS=10000, about a
minute on two cores); `make test` runs 2,000 of each, the default, to stay quick. The assertions
are the same: they do not depend on the count.

Token counting is on (the `model` label) and the rate limiter is on (the `client` label), behind a
trusted proxy so that every request may claim its own client address in X-Forwarded-For. The
series in /metrics are counted before, after half the traffic and at the end.

The bound, per label (docs/architecture.md):
  method       the 7 proxied methods (any other method is a 405 that records nothing)
  path         the known route templates, or `other`
  status_code  the HTTP statuses the clients actually received (3-digit numbers)
  model        MODEL_LABELS, or `other`
  client       source-00 … source-63
  code         the known Z.AI business codes, or `other`
  error_type   an HTTP status, or one of the named failure kinds
So the number of series does not depend on how many distinct paths, models or clients there are:
the second half of the traffic, all of it new random values, only adds the few label combinations
(say OPTIONS × other × 400) that the first half happened not to meet, never one per value.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import random
import string
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tools.proxy_process import ProxyProcess

os.environ.setdefault("TIKTOKEN_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"))

from zai_proxy.metrics import FAIRNESS_BUCKETS, ZAI_CODES  # noqa: E402
from zai_proxy.routes import KNOWN_PATHS  # noqa: E402

PER_KIND = int(os.environ.get("ZAI_PROXY_CARDINALITY_REQUESTS", "2000"))
# The stated bound for this traffic mix, in /metrics samples (a histogram series is 15-18 samples):
# whatever PER_KIND is. A label taking raw values would add thousands per half.
MAX_SAMPLES = 4000
MAX_NEW_IN_SECOND_HALF = 150
PROXIED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MODEL_LABELS = ("glm-4.7", "glm-4.6", "glm-4.5-air")
ERROR_TYPES = {"upstream_refused", "upstream_dns", "upstream_tls", "upstream_connect_timeout",
               "upstream_unreachable", "upstream_reset", "upstream_protocol", "upstream_connection",
               "upstream_timeout", "truncated_response", "empty_streaming", "read_error",
               "bad_encoding", "write_error"}
# Upstream answers mixed into the model traffic: Z.AI errors with random business codes and bare
# statuses, so the `code`, `class`, `status_code` and `error_type` labels see unknown values too.
UPSTREAM_STATUSES = (400, 401, 403, 404, 409, 422, 500, 502, 503, 504)


def _word(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


PATH_ALPHABET = string.ascii_letters + string.digits + "-_~!$&'()*+,;=:%"
MODEL_ALPHABET = string.ascii_letters + string.digits + "-_./:" + "éüñ中文🙂 "


def random_path(rng: random.Random, i: int) -> str:
    prefix = rng.choice(("/v1/", "/api/", "/api/paas/v4/", "/api/anthropic/v1/", "/", "/v2/"))
    segments = [_word(rng, PATH_ALPHABET, 1, 12) for _ in range(rng.randint(1, 4))]
    return f"{prefix}{'/'.join(segments)}-r{i}"


def random_model(rng: random.Random, i: int) -> str:
    name = _word(rng, MODEL_ALPHABET, 1, 40).replace("@", "")
    return rng.choice((name, name.upper(), "GLM-4.7-" + name, name * 5)) + f"-m{i}"


def random_source(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if rng.random() < 0.8:
        return ":".join(f"{rng.randint(0, 0xffff):x}" for _ in range(8))
    return _word(rng, string.ascii_letters, 1, 10)   # garbage: falls back to the peer address


def random_headers(rng: random.Random, i: int) -> dict:
    headers = {"X-Forwarded-For": ", ".join(random_source(rng) for _ in range(rng.randint(1, 3))),
               f"X-Random-{_word(rng, string.ascii_letters, 1, 8)}": _word(rng, PATH_ALPHABET,
                                                                            0, 30),
               "X-Request-Id": f"rid-{i}-{_word(rng, string.ascii_letters, 4, 8)}",
               "User-Agent": f"client/{i}"}
    if rng.random() < 0.3:
        headers["Accept-Language"] = _word(rng, string.ascii_lowercase, 2, 5)
    return headers


def path_requests(rng: random.Random, start: int, count: int) -> list[tuple]:
    out = []
    for i in range(start, start + count):
        method = rng.choice(PROXIED_METHODS + ("PROPFIND", "FOO"))
        body = b'{"x": 1}' if method in ("POST", "PUT", "PATCH") else None
        headers = random_headers(rng, i)
        if body:
            headers["Content-Type"] = "application/json"
        out.append((method, random_path(rng, i), headers, body))
    return out


def model_requests(rng: random.Random, start: int, count: int) -> list[tuple]:
    out = []
    for i in range(start, start + count):
        model = random_model(rng, i)
        roll = rng.random()
        headers = random_headers(rng, i)
        if roll < 0.05:
            headers["X-Fake-Scenario"] = f"error;code={rng.randint(1000, 99999)}"
        elif roll < 0.08:
            headers["X-Fake-Scenario"] = f"status;code={rng.choice(UPSTREAM_STATUSES)}"
        stream = rng.random() < 0.3
        if rng.random() < 0.5:
            path, body = "/v1/chat/completions", {
                "model": model, "stream": stream,
                "messages": [{"role": "user", "content": _word(rng, MODEL_ALPHABET, 1, 20)}]}
        else:
            path, body = "/v1/messages", {
                "model": model, "max_tokens": 8, "stream": stream,
                "messages": [{"role": "user", "content": _word(rng, MODEL_ALPHABET, 1, 20)}]}
        out.append(("POST", path, headers, body))
    return out


def send_all(proxy: ProxyProcess, batch: list[tuple], statuses: dict) -> None:
    """Each item on one of 8 keep-alive connections, its path exactly as written. http.client,
    not requests: at 4,000 requests, requests' own work per request (proxy settings read from
    the environment, cookie and header merging) cost 8 CPU-s, four times http.client's."""
    local = threading.local()

    def one(item):
        method, path, headers, body = item
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers = {**headers, "Content-Type": "application/json"}
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(
                "127.0.0.1", proxy.port, timeout=30)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.will_close:   # the proxy ended this connection: the next item opens one
            connection.close()
            local.connection = None
        return response.status

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for status in pool.map(one, batch):
            statuses[status] = statuses.get(status, 0) + 1


def series(proxy: ProxyProcess) -> tuple[dict[str, set], str]:
    """{family name: set of label sets (one per series)} and the raw text."""
    text = proxy.metrics_text()
    found: dict[str, set] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[family.name].add((sample.name, frozenset(sample.labels.items())))
    return found, text


def label_values(found: dict[str, set]) -> dict[str, set]:
    values: dict[str, set] = defaultdict(set)
    for samples in found.values():
        for _, labels in samples:
            for key, value in labels:
                values[key].add(value)
    return values


pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from tools.fake_zai import FakeZai
    rng = random.Random(20261129)
    statuses: dict[int, int] = {}
    with FakeZai() as fake, ProxyProcess(
            tmp_path_factory.mktemp("cardinality"), fake.url, WEB_CONCURRENCY="2",
            MAX_WORKERS="32", TOKEN_COUNTING_ENABLED="true", RATE_LIMIT_ENABLED="true",
            RATE_LIMIT_INITIAL="100000", RATE_LIMIT_MIN="100000", RATE_LIMIT_MAX="100000",
            TRUSTED_PROXY_CIDRS="127.0.0.0/8,::1/128", MAX_RETRIES="0",
            MODEL_LABELS=",".join(MODEL_LABELS), LOG_LEVEL="warning") as proxy:
        before, _ = series(proxy)
        half = PER_KIND // 2
        send_all(proxy, path_requests(rng, 0, half) + model_requests(rng, 0, half), statuses)
        middle, _ = series(proxy)
        send_all(proxy, path_requests(rng, half, half) + model_requests(rng, half, half),
                 statuses)
        after, text = series(proxy)
        upstream_count = fake.stats
    return {"before": before, "middle": middle, "after": after, "text": text,
            "statuses": statuses, "fake": upstream_count}


def _count(found: dict[str, set]) -> int:
    return sum(len(samples) for samples in found.values())


def test_the_traffic_really_ran(run):
    statuses = run["statuses"]
    assert sum(statuses.values()) == 2 * PER_KIND
    assert statuses[200] > PER_KIND          # model traffic and random /v1 paths went upstream
    assert statuses[404] > PER_KIND / 10     # unknown prefixes
    assert statuses[405] > PER_KIND / 10     # unknown methods
    assert 429 in statuses and 500 in statuses


def test_every_label_value_is_from_its_bounded_set(run):
    values = label_values(run["after"])
    allowed_paths = set(KNOWN_PATHS) | {"other"}
    assert values["method"] <= set(PROXIED_METHODS)
    assert values["path"] <= allowed_paths
    assert values["status_code"] <= {str(s) for s in run["statuses"]}
    assert values["model"] <= set(MODEL_LABELS) | {"other"}
    assert "other" in values["model"]                    # random models were counted, as other
    assert values["client"] <= {f"source-{b:02d}" for b in range(FAIRNESS_BUCKETS)}
    assert len(values["client"]) == FAIRNESS_BUCKETS     # many sources fill every bucket, no more
    assert values["code"] <= set(ZAI_CODES) | {"other"}
    assert "other" in values["code"]
    assert values["error_type"] <= ERROR_TYPES | {str(s) for s in range(100, 600)} | {"other"}
    assert values["variant"] == {"production"}


def test_no_random_value_reaches_metrics(run):
    text = run["text"]
    for marker in ("-r1", "-r5000", "-r9999", "-m1\"", "-m4242", "X-Random", "rid-", "client/",
                   "éüñ", "中文"):
        assert marker not in text, marker


def test_the_series_count_is_bounded_and_stops_growing(run):
    before, middle, after = (_count(run[k]) for k in ("before", "middle", "after"))
    new_values = PER_KIND   # the second half: PER_KIND/2 new paths and PER_KIND/2 new models,
    # each with new sources and request ids
    added = after - middle
    assert added <= MAX_NEW_IN_SECOND_HALF < new_values / 10, sorted(
        {(f, s) for f in run["after"] for s in run["after"][f]} -
        {(f, s) for f in run["middle"] for s in run["middle"][f]})[:10]
    assert before < middle <= after <= MAX_SAMPLES
    families = {name: len(samples) for name, samples in run["after"].items()}
    # client: exactly the 64 fairness buckets, each a 12-bucket histogram (+Inf, _sum, _count).
    assert families["zai_proxy_rate_limit_wait_seconds"] == FAIRNESS_BUCKETS * (12 + 3)
    print(f"cardinality: {2 * PER_KIND} random requests; /metrics samples {before} before, "
          f"{middle} after half, {after} at the end (+{added} in the second half); per family: "
          f"{dict(sorted(families.items()))}")
