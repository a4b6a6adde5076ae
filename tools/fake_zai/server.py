"""The aiohttp server: routes a request by path suffix, picks its scenario, records it and sends
the answer. Built on aiohttp's low-level `web.Server` (no router, no middlewares) because it
must never be the bottleneck of a proxy benchmark; common answers are serialised once and cached.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from aiohttp.web_request import BaseRequest

from . import anthropic_payloads, control, errors, openai_payloads, quota
from .recorder import CLIENT_CLOSED, RecordedRequest, Recorder
from .scenarios import OK, FailCounters, Scenario, ScenarioError, parse, resolve, split_model
from .transport import JSON_HEADERS, SSE_HEADERS, Plan, send

SCENARIO_HEADER = "X-Fake-Scenario"
DEFAULT_MODEL = "glm-4.7"
MAX_BODY = 64 * 1024 * 1024
_CACHE_MAX = 512
# Endpoints whose request body is a JSON object carrying `model` (and maybe `stream`).
_JSON_ENDPOINTS = frozenset({"chat", "messages", "count_tokens", "embeddings"})


def endpoint(path: str) -> str:
    """Which surface a path is, by suffix, so that any prefix (`/api/paas/v4`,
    `/api/coding/paas/v4`, `/api/anthropic`, none) works."""
    path = path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/messages/count_tokens"):
        return "count_tokens"
    if path.endswith("/messages"):
        return "messages"
    if path.endswith("/models"):
        return "models"
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/monitor/usage/quota/limit"):
        return "quota"
    return "echo"


_METHODS = {"chat": "POST", "messages": "POST", "count_tokens": "POST", "embeddings": "POST",
            "models": "GET", "quota": "GET"}


class State:
    """Everything one server process knows; shared with the test thread through FakeZai."""

    def __init__(self, scenario: str | None = None, record_limit: int = 10_000):
        self.recorder = Recorder(record_limit)
        self.counters = FailCounters()
        self.initial_scenario = scenario
        self.default: Scenario = parse(scenario)
        # Defaults for one endpoint only (path suffix -> scenario), e.g. to fail the quota
        # endpoint, which the proxy calls itself, while chat requests keep working.
        self.path_defaults: dict[str, Scenario] = {}
        self.quota = quota.default_payload()
        self.quota_body = openai_payloads.dumps(self.quota)
        self.cache: dict[tuple, Plan] = {}

    def set_default(self, spec: str | None, path_suffix: str | None = None) -> None:
        chosen = parse(spec)  # raises ScenarioError before anything changes
        if path_suffix is None:
            self.default = chosen
        elif spec:
            self.path_defaults[path_suffix] = chosen
        else:
            self.path_defaults.pop(path_suffix, None)

    def default_for(self, path: str) -> Scenario:
        if self.path_defaults:
            for suffix, chosen in self.path_defaults.items():
                if path.endswith(suffix):
                    return chosen
        return self.default

    def set_quota(self, payload: dict) -> None:
        if not isinstance(payload, dict):
            raise ValueError("quota payload must be a JSON object")
        self.quota = payload
        self.quota_body = openai_payloads.dumps(payload)

    def reset(self) -> None:
        self.recorder.clear()
        self.counters.reset()
        self.default = parse(self.initial_scenario)
        self.path_defaults = {}
        self.set_quota(quota.default_payload())


def _fake_error(status: int, message: str) -> Plan:
    body = openai_payloads.dumps({"error": {"code": "fake_scenario", "message": message}})
    return Plan(status, JSON_HEADERS + (("X-Fake-Error", "1"),), body)


def _bad_request(anthropic: bool, code: str, message: str, status: int = 400) -> Plan:
    """Z.AI-like refusals of a request the fake cannot answer (bad JSON, wrong method)."""
    if anthropic:
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    else:
        body = {"error": {"code": code, "message": message}}
    return Plan(status, JSON_HEADERS, openai_payloads.dumps(body))


def _ok_plan(kind: str, request: BaseRequest, data: dict | None, model: str,
             scenario: Scenario, body: bytes) -> Plan:
    if kind == "chat":
        if data.get("stream") is True:
            options = data.get("stream_options")
            include = isinstance(options, dict) and options.get("include_usage") is True
            events = openai_payloads.chat_stream(model, scenario, include)
            if scenario.name == "stream_error":
                events = _with_error(events, scenario, False)
            return Plan(200, SSE_HEADERS, events=events)
        return Plan(200, JSON_HEADERS, openai_payloads.chat_completion(model, scenario))
    if kind == "messages":
        if data.get("stream") is True:
            events = anthropic_payloads.message_stream(model, scenario)
            if scenario.name == "stream_error":
                events = _with_error(events, scenario, True)
            return Plan(200, SSE_HEADERS, events=events)
        return Plan(200, JSON_HEADERS, anthropic_payloads.message(model, scenario))
    if kind == "count_tokens":
        return Plan(200, JSON_HEADERS, anthropic_payloads.count_tokens(scenario))
    if kind == "models":
        if "/anthropic" in request.path:
            return Plan(200, JSON_HEADERS, anthropic_payloads.model_list())
        return Plan(200, JSON_HEADERS, openai_payloads.model_list())
    if kind == "embeddings":
        return Plan(200, JSON_HEADERS, openai_payloads.embeddings(data, model, scenario))
    return Plan(200, JSON_HEADERS, openai_payloads.dumps({
        "echo": True, "method": request.method, "path": request.path,
        "query": request.query_string,
        "headers": sorted({k.decode("latin-1").lower() for k, _ in request.raw_headers}),
        "body_bytes": len(body)}))


def _with_error(events: list[bytes], scenario: Scenario, anthropic: bool) -> list[bytes]:
    """stream_error: the first `after` events, then an error event, then the end."""
    after = scenario.get_int("after", 2)
    message = scenario.get_str("message", "The service may be temporarily overloaded")
    if anthropic:
        error = anthropic_payloads.stream_error_event(
            scenario.get_str("error_type", "overloaded_error"), message)
    else:
        error = openai_payloads.stream_error_event(scenario.get_str("code", "1305"), message)
    return events[:after] + [error]


class FakeServer:
    """The request handler bound to one `State`."""

    def __init__(self, state: State):
        self.state = state

    async def __call__(self, request: BaseRequest) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await control.handle(request, self.state)
        body = await request.read()
        record = RecordedRequest(request.method, request.path, request.query_string,
                                 request.raw_headers, body, time.time(), None)
        recorder = self.state.recorder
        recorder.add(record)
        try:
            response, status = await self._answer(request, body, record)
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler) or the server is stopping.
            recorder.finish(record, CLIENT_CLOSED, time.time())
            raise
        except ConnectionError:
            recorder.finish(record, CLIENT_CLOSED, time.time())
            return web.Response(status=CLIENT_CLOSED)
        recorder.finish(record, status, time.time())
        return response

    async def _answer(self, request: BaseRequest, body: bytes, record: RecordedRequest):
        kind = endpoint(request.path)
        anthropic = kind in ("messages", "count_tokens") or "/anthropic" in request.path
        if kind in _METHODS and request.method != _METHODS[kind]:
            return await self._plain(request, _bad_request(
                anthropic, "405", f"Method {request.method} not allowed", 405))
        spec = request.headers.get(SCENARIO_HEADER)
        data = None
        model = DEFAULT_MODEL
        if kind in _JSON_ENDPOINTS:
            try:
                data = json.loads(body) if body else None
            except ValueError:
                data = None
            if not isinstance(data, dict):
                return await self._plain(request, _bad_request(
                    anthropic, "1214", "Request body is not a valid JSON object"))
            raw_model = data.get("model")
            if isinstance(raw_model, str):
                model, suffix = split_model(raw_model)
                if spec is None:
                    spec = suffix
        try:
            chosen = parse(spec) if spec else self.state.default_for(request.path)
            record.scenario = chosen.spec
            scenario = resolve(chosen, self.state.counters)
            plan = self._plan(kind, request, data, model, scenario, body, anthropic)
        except ScenarioError as exc:
            return await self._plain(request, _fake_error(400, str(exc)))
        return await send(request, plan, scenario)

    def _plan(self, kind, request, data, model, scenario, body, anthropic) -> Plan:
        name = scenario.name
        if name == "error":
            beta = "anthropic-beta" in request.headers
            return Plan(*errors.error_answer(scenario, anthropic, beta))
        if name == "status":
            return Plan(*errors.status_answer(scenario, anthropic))
        if kind == "quota":
            return Plan(200, JSON_HEADERS, self.state.quota_body)
        if kind in ("echo", "embeddings") or name == "large":
            return _ok_plan(kind, request, data, model, scenario, body)
        stream = data is not None and data.get("stream") is True
        include = stream and isinstance(data.get("stream_options"), dict) and \
            data["stream_options"].get("include_usage") is True
        key = (kind, "/anthropic" in request.path, model, stream, include, scenario.cache_key())
        plan = self.state.cache.get(key)
        if plan is None:
            plan = _ok_plan(kind, request, data, model, scenario, body)
            if len(self.state.cache) >= _CACHE_MAX:
                self.state.cache.clear()
            self.state.cache[key] = plan
        return plan

    async def _plain(self, request, plan: Plan):
        return await send(request, plan, OK)


def make_server(state: State) -> web.Server:
    loop = asyncio.get_running_loop()

    def request_factory(message, payload, protocol, writer, task):
        # Bodies up to 64 MiB: the proxy, not its upstream, is the one that enforces limits.
        return BaseRequest(message, payload, protocol, writer, task, loop,
                           client_max_size=MAX_BODY)

    # handler_cancellation: a client that disconnects cancels its handler, so stalled and slow
    # streams do not linger, and the record shows status 499.
    return web.Server(FakeServer(state), request_factory=request_factory, access_log=None,
                      handler_cancellation=True, auto_decompress=False, max_line_size=65536, max_field_size=65536)


async def start(state: State, host: str = "127.0.0.1", port: int = 0,
                reuse_port: bool = False) -> tuple[web.BaseRunner, int]:
    """Start serving; returns the runner (for `cleanup()`) and the bound port."""
    runner = web.ServerRunner(make_server(state), handle_signals=False, shutdown_timeout=0.05)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound
