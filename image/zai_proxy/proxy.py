"""The request pipeline: authenticate → cap → read body → admit → attempt (with retries) → relay.

Everything a proxied request does is in this order, in this file; the modules it calls each do
one job. Upstream answers pass through unchanged; only errors the proxy makes itself are built
here, in the caller's API family format.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid

import requests
from flask import Response, request
from gunicorn.http import errors as http_errors
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from . import headers as hdrs
from . import retry, routes, upstream, zai_errors
from .disconnect import InFlight, client_socket
from .errors import ProxyError, error_body
from .streaming import StreamRelay

log = logging.getLogger("zai_proxy.proxy")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_JSON_TYPES = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")
# Statuses whose body is classified for a retry decision: Z.AI's 429s, and "overloaded"
# (503, and 529 on the Anthropic surface), which also get a Retry-After when they reach the client.
_CLASSIFIED = (429, 503, 529)
_BAD_CHUNKING = (http_errors.InvalidChunkSize, http_errors.ChunkMissingTerminator,
                 http_errors.InvalidChunkExtension)


class ClientGone(Exception):
    """The client hung up while we waited; nobody is left to answer."""


class Exchange:
    """What one request did, for its metrics and its log line."""

    def __init__(self, state, method: str, path: str):
        self.state = state
        self.metrics = state.metrics
        self.started = time.monotonic()
        self.method = method
        self.path = path
        self.path_label = routes.path_label(path)
        self.family = routes.family_for_path(path)
        self.request_id = uuid.uuid4().hex
        self.inflight = InFlight()
        self.status = 0
        self.sent_bytes = 0
        self.first_byte_at: float | None = None
        self.upstream_status: int | None = None
        self.attempts = 0
        self.model: str | None = None
        self.outcome = "ok"
        self.usage: dict | None = None
        self.holds_slot = False
        self.watch_fd: int | None = None
        self._finished = False

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        state, metrics = self.state, self.metrics
        upstream.bind_inflight(None)
        self.inflight.finish()
        if self.watch_fd is not None:
            state.watcher.unwatch(self.watch_fd)
        try:
            elapsed = time.monotonic() - self.started
            metrics.count_request(self.method, self.path_label, self.status, elapsed,
                                  self.sent_bytes)
            if self.first_byte_at is not None:
                metrics.ttfb.labels(self.path_label, metrics.variant).observe(
                    self.first_byte_at - self.started)
            if self.outcome == "client_gone":
                metrics.stream_disconnects.labels(self.path_label, metrics.variant).inc()
            state.request_log.write(self, elapsed)
        finally:
            # Last: a request leaves the in-flight gauge only once it is counted and logged.
            if self.holds_slot:
                state.capacity.release()


class Pipeline:
    def __init__(self, state):
        self.state = state
        self.config = state.config

    # Entry point ---------------------------------------------------------------------------
    def handle(self, path: str) -> Response:
        state = self.state
        exchange = Exchange(state, request.method, path)
        incoming_id = request.headers.get("X-Request-Id", "")
        if _REQUEST_ID.match(incoming_id):
            exchange.request_id = incoming_id
        try:
            response = self._handle(exchange)
        except ProxyError as exc:
            response = self._error(exchange, exc)
        except ClientGone:
            exchange.outcome = "client_gone"
            response = Response(b"", status=499)
        except Exception:  # noqa: BLE001 - a bug must still answer in the family's format
            log.exception("unexpected error (request_id=%s)", exchange.request_id)
            response = self._error(exchange, ProxyError(
                500, "The proxy failed unexpectedly; the request id is in the logs.",
                "proxy_error"))
        exchange.status = response.status_code
        response.headers["X-Request-Id"] = exchange.request_id
        if not response.is_streamed:
            exchange.sent_bytes = response.calculate_content_length() or 0
        response.call_on_close(exchange.finish)
        return response

    def _error(self, exchange: Exchange, exc: ProxyError) -> Response:
        body = error_body(exchange.family, exc.status, exc.message, exc.code)
        response = Response(body, status=exc.status, content_type="application/json")
        for name, value in exc.headers.items():
            response.headers[name] = value
        if exchange.outcome == "ok":
            exchange.outcome = exc.code
        return response

    def _handle(self, exchange: Exchange) -> Response:
        state, config = self.state, self.config
        route = routes.resolve(config, exchange.path)
        exchange.family = route.family
        self._authenticate()
        declared = request.content_length
        if declared is not None and declared > config.max_request_bytes:
            raise _too_large(config)
        if state.capacity.draining:
            raise ProxyError(503, "The proxy is shutting down; retry on another instance.",
                             "draining", {"Retry-After": "1", "Connection": "close"})
        # The body is read before a slot is taken, so a slow upload cannot hold one.
        body = self._read_body()
        if not state.capacity.try_acquire():
            raise ProxyError(503, f"The proxy is at capacity ({config.max_workers} requests in "
                             "flight, MAX_WORKERS); retry shortly.", "at_capacity",
                             {"Retry-After": "1"})
        exchange.holds_slot = True
        upstream.bind_inflight(exchange.inflight)
        state.metrics.request_size.labels(exchange.method, exchange.path_label,
                                          state.metrics.variant).observe(len(body))
        payload = self._parse_json(route, body) if body or route.expects_json else None
        if isinstance(payload, dict):
            exchange.model = payload.get("model") if isinstance(payload.get("model"), str) else None
        client_sock = client_socket(request.environ)
        if client_sock is not None:
            exchange.watch_fd = state.watcher.watch(client_sock, exchange.inflight)

        if state.quota is not None:
            reset_in = state.quota.exhausted()
            if reset_in is not None:
                raise ProxyError(429, "The Z.AI quota window is exhausted; it resets in "
                                 f"{int(reset_in)} s.", "quota_exhausted",
                                 {"Retry-After": str(max(1, int(reset_in + 0.999))),
                                  "X-Zai-Error-Class": "quota"})

        accountant = None
        if state.tokens is not None and isinstance(payload, dict) and exchange.method == "POST":
            payload, body, accountant = state.tokens.begin(route.family, exchange.model, payload,
                                                           body)
        out_headers = hdrs.upstream_request_headers(request.headers, route.family, config,
                                                    exchange.request_id)
        url = route.upstream_url
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        return self._attempts(exchange, url, out_headers, body if body else None, accountant)

    # Steps -----------------------------------------------------------------------------------
    def _authenticate(self) -> None:
        keys = self.config.proxy_api_keys
        if not keys:
            return
        presented = request.headers.get("x-api-key", "")
        auth = request.headers.get("Authorization", "")
        if not presented and auth[:7].lower() == "bearer ":
            presented = auth[7:].strip()
        matched = False
        for key in keys:  # every key is compared, so timing does not tell which one is close
            matched |= hmac.compare_digest(presented.encode(), key.encode())
        if not matched:
            raise ProxyError(401, "Missing or invalid proxy API key: send it as "
                             "'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                             "invalid_api_key", {"WWW-Authenticate": "Bearer"})

    def _read_body(self) -> bytes:
        limit, timeout = self.config.max_request_bytes, self.config.client_body_timeout
        sock = client_socket(request.environ)
        if sock is not None:
            sock.settimeout(timeout)      # the longest pause allowed between body bytes
        try:
            body = request.stream.read(limit + 1)
        except TimeoutError:
            raise ProxyError(408, f"The request body stopped arriving for {timeout:g} s "
                             "(CLIENT_BODY_TIMEOUT).", "request_timeout",
                             {"Connection": "close"}) from None
        except _BAD_CHUNKING:
            raise ProxyError(400, "The request body's chunked transfer encoding is invalid.",
                             "invalid_body", {"Connection": "close"}) from None
        except http_errors.NoMoreData:
            raise ClientGone() from None
        finally:
            if sock is not None:
                sock.settimeout(None)
        if len(body) > limit:
            raise _too_large(self.config)
        declared = request.content_length
        if declared is not None and len(body) < declared:
            raise ClientGone()    # it left before sending what it announced: nothing to forward
        return body

    def _parse_json(self, route: routes.Route, body: bytes):
        content_type = (request.mimetype or "").lower()
        if not route.expects_json:
            if content_type and not _JSON_TYPES.match(content_type):
                return None  # e.g. a multipart upload: passed through untouched
            try:
                return json.loads(body) if body else None
            except ValueError:
                return None
        if content_type and not _JSON_TYPES.match(content_type):
            raise ProxyError(415, f"Content-Type {content_type!r} is not supported here: send "
                             "the body as JSON with 'Content-Type: application/json'.",
                             "unsupported_media_type")
        try:
            payload = json.loads(body)
        except UnicodeDecodeError:
            raise ProxyError(400, "The request body is not valid UTF-8 JSON.",
                             "invalid_json") from None
        except ValueError as exc:
            raise ProxyError(400, f"The request body is not valid JSON ({exc}).",
                             "invalid_json") from None
        if not isinstance(payload, dict):
            raise ProxyError(400, "The request body must be a JSON object.", "invalid_json")
        return payload

    def _attempts(self, exchange, url, out_headers, body, accountant) -> Response:
        state = self.state
        policy, limiter, metrics = state.retry_policy, state.limiter, state.metrics
        cancel = exchange.inflight.cancel
        attempt = 0
        while True:
            if limiter is not None:
                self._admit(exchange)
            exchange.attempts = attempt + 1
            try:
                response = upstream.send(state.session, self.config, exchange.method, url,
                                         out_headers, body)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if cancel.is_set():
                    raise ClientGone() from None
                timed_out = isinstance(exc, requests.Timeout)
                kind = "upstream_timeout" if timed_out and not isinstance(
                    exc, requests.ConnectTimeout) else "upstream_connection"
                metrics.upstream_error(kind)
                if limiter is not None:
                    limiter.observe("error")
                decision = policy.on_network_error(attempt)
                if decision.retry and attempt < self.config.max_retries:
                    attempt = self._wait_and_count(decision, cancel, attempt)
                    continue
                if kind == "upstream_timeout":
                    raise ProxyError(504, "The upstream did not answer within "
                                     "UPSTREAM_READ_TIMEOUT.", kind) from None
                raise ProxyError(502, "The upstream could not be reached "
                                 f"({self.config.zai_base_url}).", kind) from None

            status = response.status_code
            exchange.upstream_status = status
            if status >= 400:
                metrics.upstream_error(status)
            if status in _CLASSIFIED:
                raw = self._read_or_fail(exchange, response)
                error = zai_errors.classify(status, raw, response.headers, time.time())
                metrics.zai_error(error.error_class, error.code)
                decision = policy.on_zai_error(attempt, error)
                if limiter is not None:
                    limiter.observe("frequency_429" if decision.slow_down else "other_429")
                if decision.retry and attempt < self.config.max_retries:
                    attempt = self._wait_and_count(decision, cancel, attempt)
                    continue
                extra = retry.final_429_headers(error, response.headers, time.time())
                return self._buffered(exchange, response, raw, extra)
            if limiter is not None:
                limiter.observe("ok" if status < 400 else "error")
            if status >= 300 or exchange.method == "HEAD":
                return self._buffered(exchange, response, self._read_or_fail(exchange, response))
            if _is_event_stream(response):
                first, failure = self._first_chunk(exchange, response)
                if first:
                    return self._stream(exchange, response, first, accountant)
                kind = failure or "empty_streaming"
            else:
                raw, failure = self._read_upstream_body(exchange, response)
                if failure is None and _complete(response, raw):
                    if accountant is not None:
                        accountant.on_body(raw)
                        exchange.usage = accountant.finish()
                    return self._buffered(exchange, response, raw)
                kind = failure or "truncated_response"
            response.close()
            metrics.upstream_error(kind)
            timed_out = kind == "upstream_timeout"
            decision = (policy.on_network_error(attempt) if timed_out
                        else policy.on_bad_success(attempt, kind))
            if decision.retry and attempt < self.config.max_retries:
                attempt = self._wait_and_count(decision, cancel, attempt)
                continue
            if timed_out:
                raise ProxyError(504, "The upstream stopped sending for longer than "
                                 "UPSTREAM_READ_TIMEOUT.", kind)
            raise ProxyError(502, "The upstream answered 200 with an empty or cut body "
                             f"({kind}).", kind)

    def _admit(self, exchange) -> None:
        from .ratelimit import source_key
        source = source_key(
            request.remote_addr or "", request.headers.get("X-Forwarded-For"),
            self.config.trusted_proxy_cidrs)
        admission = self.state.limiter.acquire(source, exchange.inflight.cancel)
        if admission.ok:
            return
        if exchange.inflight.cancel.is_set():
            raise ClientGone()
        retry_after = max(1, int((admission.retry_after or 1) + 0.999))
        raise ProxyError(429, "The proxy's adaptive rate limit is saturated (waiting would "
                         "exceed RATE_LIMIT_MAX_WAIT); retry after the indicated time.",
                         "rate_limited", {"Retry-After": str(retry_after)})

    def _wait_and_count(self, decision, cancel, attempt) -> int:
        self.state.metrics.retry(decision.reason)
        if self.state.wait(decision.wait, cancel):
            raise ClientGone()
        return attempt + 1

    def _read_upstream_body(self, exchange, response) -> tuple[bytes, str | None]:
        """(the whole upstream body, None) or (b"", failure kind) when the upstream breaks off
        (truncated_response) or falls silent (upstream_timeout)."""
        try:
            raw = upstream.read_all(response)
        except (Urllib3Error, requests.RequestException, OSError) as exc:
            response.close()
            if exchange.inflight.cancel.is_set():
                raise ClientGone() from None
            return b"", _failure_kind(exc, "truncated_response")
        # Read to its end, the connection is back in urllib3's pool and no longer ours to cut.
        exchange.inflight.forget_upstream()
        return raw, None

    def _read_or_fail(self, exchange, response) -> bytes:
        """The whole upstream body of an answer passed through as it is; 502/504 if it breaks."""
        raw, failure = self._read_upstream_body(exchange, response)
        if failure is None:
            return raw
        kind = "upstream_timeout" if failure == "upstream_timeout" else "read_error"
        self.state.metrics.upstream_error(kind)
        if kind == "upstream_timeout":
            raise ProxyError(504, "The upstream stopped sending for longer than "
                             "UPSTREAM_READ_TIMEOUT.", kind)
        raise ProxyError(502, "The upstream connection broke while sending its answer.", kind)

    def _first_chunk(self, exchange, response) -> tuple[bytes, str | None]:
        try:
            return upstream.read_some(response), None
        except (Urllib3Error, requests.RequestException, OSError) as exc:
            if exchange.inflight.cancel.is_set():
                raise ClientGone() from None
            return b"", _failure_kind(exc, "empty_streaming")

    def _buffered(self, exchange, response, raw: bytes, extra: dict | None = None) -> Response:
        response.close()
        out = Response(raw, status=response.status_code,
                       headers=hdrs.client_response_headers(response.headers))
        if "Content-Type" not in response.headers:
            out.headers.pop("Content-Type", None)
        for name, value in (extra or {}).items():
            out.headers[name] = value
        return out

    def _stream(self, exchange, response, first: bytes, accountant) -> Response:
        parser = self.state.tokens.parser() if accountant is not None else None
        relay = StreamRelay(exchange, response, first, accountant, parser)
        out = Response(relay, status=response.status_code,
                       headers=hdrs.client_response_headers(response.headers))
        out.headers["X-Accel-Buffering"] = "no"
        out.headers["Cache-Control"] = "no-cache"
        return out


def _too_large(config) -> ProxyError:
    return ProxyError(413, f"The request body is larger than MAX_REQUEST_BYTES "
                      f"({config.max_request_bytes} bytes).", "request_too_large")


def _failure_kind(exc: Exception, otherwise: str) -> str:
    timed_out = isinstance(exc, (ReadTimeoutError, requests.Timeout)) or "timed out" in str(exc)
    return "upstream_timeout" if timed_out else otherwise


def _is_event_stream(response) -> bool:
    return response.headers.get("Content-Type", "").startswith("text/event-stream")


def _complete(response, raw: bytes) -> bool:
    """A 2xx body that is not empty and, when it says it is JSON, parses."""
    if not raw:
        return False
    if "json" in response.headers.get("Content-Type", ""):
        try:
            json.loads(raw)
        except ValueError:
            return False
    return True
