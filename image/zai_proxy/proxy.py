"""The request pipeline: route → authenticate → read body → cap → admit → attempt (with retries).

`Pipeline._steps` is the whole of it, in order; each step is a small method below it or a module
that does one job. Upstream answers pass through unchanged; the proxy's own errors are raised as
ProxyError (errors.py holds every message) and answered in the caller's API family format.

`ProxiedFirst` hands API paths (/v1/…, /api/…) to the pipeline straight from WSGI; Flask serves
the rest (service endpoints, other paths and methods) exactly as its routes say. For the API
paths Flask's routing could only pick the catch-all route that calls the pipeline anyway, so
its request context, URL matching and response finalisation are skipped: about a tenth of the
CPU of a proxied request (`make bench`).
"""

from __future__ import annotations

import hmac
import json
import logging
import re

from flask import Response
from gunicorn.http import errors as http_errors
from werkzeug.wrappers import Request

from . import attempt, client_deadlines, errors, routes, upstream
from . import headers as hdrs
from .buffered import BufferedResponse
from .disconnect import client_socket
from .errors import ClientGone, ProxyError, error_body
from .exchange import Exchange

log = logging.getLogger("zai_proxy.proxy")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_JSON_TYPES = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")
_BAD_CHUNKING = (http_errors.InvalidChunkSize, http_errors.ChunkMissingTerminator,
                 http_errors.InvalidChunkExtension)
PROXIED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class ProxiedFirst:
    """WSGI middleware: API paths go to the pipeline, everything else to the Flask app."""

    def __init__(self, flask_wsgi, pipeline: "Pipeline"):
        self.flask_wsgi = flask_wsgi
        self.pipeline = pipeline

    def __call__(self, environ, start_response):
        if self.takes(environ):
            return self.pipeline.serve(environ, start_response)
        return self.flask_wsgi(environ, start_response)

    @staticmethod
    def takes(environ) -> bool:
        """Whether the pipeline serves this request directly: an API path that Flask's
        catch-all route would match (its path converter stops at a newline)."""
        path = environ.get("PATH_INFO", "")
        return (path.startswith(("/v1/", "/api/")) and "\n" not in path
                and environ.get("REQUEST_METHOD") in PROXIED_METHODS)


class Pipeline:
    def __init__(self, state):
        self.state = state
        self.config = state.config
        self._routes: dict[str, routes.Route] = {}

    def serve(self, environ, start_response):
        """WSGI: one proxied request. Its accounting (metrics, log line, slot) runs when the
        answer closes, and also when the server cannot write the answer at all (it refused its
        head): the request is then logged `write_error`, and the server answers for itself."""
        response = self.handle(Request(environ))
        try:
            return response(environ, start_response)
        except Exception:
            exchange = response.exchange
            exchange.outcome = errors.WRITE_ERROR
            exchange.status = 500            # what gunicorn and werkzeug answer instead
            log.exception("the server could not write the answer (request_id=%s)",
                          exchange.request_id)
            response.close()                # the relay's upstream connection, Exchange.finish
            raise

    def handle(self, request: Request) -> Response | BufferedResponse:
        """The answer to one proxied request; metrics and the log line follow when it closes
        (Exchange.finish)."""
        exchange = Exchange(self.state, request, request.method, request.path)
        incoming_id = request.headers.get("X-Request-Id", "")
        if _REQUEST_ID.match(incoming_id):
            exchange.request_id = incoming_id
        try:
            response = self._steps(exchange)
        except ProxyError as exc:
            response = self._error(exchange, exc)
        except ClientGone:
            exchange.outcome = "client_gone"
            response = BufferedResponse(b"", 499)
        except Exception:  # noqa: BLE001 - a bug must still answer in the family's format
            log.exception("unexpected error (request_id=%s)", exchange.request_id)
            response = self._error(exchange, errors.unexpected())
        exchange.status = response.status_code
        response.headers["X-Request-Id"] = exchange.request_id
        if not response.is_streamed:
            exchange.sent_bytes = response.calculate_content_length() or 0
        response.call_on_close(exchange.finish)
        response.exchange = exchange
        return response

    def _steps(self, exchange: Exchange) -> Response | BufferedResponse:
        state, config, request = self.state, self.config, exchange.request
        route = self._route(exchange.path)                             # 404, 400
        exchange.family = route.family
        self._authenticate(request)                                    # 401
        self._refuse_before_reading(request)                           # 413, 503 draining
        body = self._read_body(request)                                # 408, 400, 413
        self._take_slot(exchange)                                      # 503 at capacity
        state.metrics.request_size(exchange.method, exchange.path_label, len(body))
        payload = (self._parse_json(route, request, body)              # 415, 400
                   if body or route.expects_json else None)
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            exchange.model = payload["model"]
        self._watch_client(exchange)
        reset_in = state.quota.exhausted()
        if reset_in is not None:
            raise errors.quota_exhausted(reset_in)                     # 429 quota
        body, exchange.accountant = state.tokens.begin(route.family, exchange.model,
                                                       exchange.method, payload, body)
        url = route.upstream_url
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        call = attempt.Call(exchange.method, url, hdrs.upstream_request_headers(
            request.environ, route.family, config, exchange.request_id), body or None)
        return self._attempts(exchange, call)

    def _attempts(self, exchange: Exchange,
                  call: attempt.Call) -> Response | BufferedResponse:
        """Attempts until one is final; between two, the wait the retry policy decided. All of
        it, and the answer's body, within the request's total deadline (UPSTREAM_TOTAL_TIMEOUT):
        a retry whose wait would outlast it is not made."""
        exchange.start_deadline()
        index = 0
        while True:
            self._admit(exchange)                                      # 429 rate limited
            exchange.attempts = index + 1
            outcome = attempt.run(self.state, exchange, call, index)
            decision = outcome.decision
            if not decision.retry or decision.wait >= exchange.time_left():
                return outcome.final()
            self.state.metrics.retry(decision.reason)
            if self.state.wait(decision.wait, exchange.inflight.stop):
                self._stopped(exchange)
            index += 1

    # Steps -----------------------------------------------------------------------------------
    def _route(self, path: str) -> routes.Route:
        """routes.resolve, remembered per path: clients use a handful. Bounded, since paths are
        theirs to choose; a path resolve refuses is never remembered."""
        route = self._routes.get(path)
        if route is None:
            route = routes.resolve(self.config, path)
            if len(self._routes) >= 256:
                self._routes.clear()
            self._routes[path] = route
        return route

    def _authenticate(self, request: Request) -> None:
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
            raise errors.invalid_api_key()

    def _refuse_before_reading(self, request: Request) -> None:
        declared = request.content_length
        if declared is not None and declared > self.config.max_request_bytes:
            raise errors.too_large(self.config.max_request_bytes)
        if self.state.capacity.draining:
            raise errors.draining()

    def _read_body(self, request: Request) -> bytes:
        """The body, read before a slot is taken so that a slow upload cannot hold one."""
        limit, timeout = self.config.max_request_bytes, self.config.client_body_timeout
        sock = client_socket(request.environ)
        if sock is not None:
            sock.settimeout(timeout)      # the longest pause allowed between body bytes
        try:
            body = request.stream.read(limit + 1)
        except TimeoutError:
            raise errors.body_timeout(timeout) from None
        except _BAD_CHUNKING:
            raise errors.invalid_chunking() from None
        except http_errors.NoMoreData:
            body = None
        finally:
            if sock is not None:
                sock.settimeout(None)
        # Under gunicorn the whole body has a deadline too: when it passes, the reading side of
        # the connection is shut down, and the read above ends short.
        if client_deadlines.expired(request.environ) == "body":
            raise errors.body_timeout(timeout)
        if body is None:
            raise ClientGone()
        if len(body) > limit:
            raise errors.too_large(limit)
        declared = request.content_length
        if declared is not None and len(body) < declared:
            raise ClientGone()    # it left before sending what it announced: nothing to forward
        return body

    def _take_slot(self, exchange: Exchange) -> None:
        if not self.state.capacity.try_acquire():
            raise errors.at_capacity(self.config.max_workers)
        exchange.holds_slot = True
        upstream.bind_inflight(exchange.inflight)

    def _parse_json(self, route: routes.Route, request: Request, body: bytes):
        content_type = (request.mimetype or "").lower()
        if not route.expects_json:
            if content_type and not _JSON_TYPES.match(content_type):
                return None  # e.g. a multipart upload: passed through untouched
            try:
                return json.loads(body) if body else None
            except ValueError:
                return None
        if content_type and not _JSON_TYPES.match(content_type):
            raise errors.unsupported_media_type(content_type)
        try:
            payload = json.loads(body)
        except UnicodeDecodeError:
            raise errors.not_utf8() from None
        except ValueError as exc:
            raise errors.invalid_json(str(exc)) from None
        if not isinstance(payload, dict):
            raise errors.not_an_object()
        return payload

    def _watch_client(self, exchange: Exchange) -> None:
        """Hang-ups are noticed while the upstream works (disconnect.py)."""
        client_sock = client_socket(exchange.request.environ)
        if client_sock is not None:
            exchange.watch_fd = self.state.watcher.watch(client_sock, exchange.inflight)

    def _admit(self, exchange: Exchange) -> None:
        request = exchange.request
        admission = self.state.limiter.admit(request.remote_addr or "",
                                             request.headers.get("X-Forwarded-For"),
                                             exchange.inflight.stop)
        if admission.ok and not exchange.inflight.stop.is_set():
            return
        self._stopped(exchange)
        raise errors.rate_limited(admission.retry_after or 1.0)

    def _stopped(self, exchange: Exchange) -> None:
        """A wait ended early: the client went away, or the total deadline passed."""
        if exchange.inflight.cancel.is_set():
            raise ClientGone()
        if exchange.past_deadline():
            raise errors.past_deadline(self.config.total_timeout)

    def _error(self, exchange: Exchange, exc: ProxyError) -> BufferedResponse:
        body = error_body(exchange.family, exc.status, exc.message, exc.code)
        response = BufferedResponse(body, exc.status, content_type="application/json")
        for name, value in exc.headers.items():
            response.headers[name] = value
        if exchange.outcome == "ok":
            exchange.outcome = exc.outcome
        return response
