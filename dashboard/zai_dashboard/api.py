"""The JSON API (dashboard/API.md): config, status, series, breakdown, CSV, verdict, events.

Nothing here shows a target's address or credentials, and no CORS header is sent: the UI is
served from the same origin.
"""

from __future__ import annotations

import json
import queue
import socket
import time

from flask import Blueprint, Response, current_app, request

from . import series as queries
from .broker import CLOSE, OverCapacity, event
from .series import RANGES, QueryError
from .storage import ROLLUP_STEP
from .verdict import MIN_REQUESTS

bp = Blueprint("api", __name__)
RETRY_MS = 3000
RETRY_AFTER_S = 5
SEND_BUFFER = 64 * 1024


def _service():
    return current_app.extensions["zai_dashboard"]


def _json(body, status: int = 200, headers=None) -> Response:
    response = Response(json.dumps(body, separators=(",", ":")), status=status,
                        mimetype="application/json", headers=headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def _whole(value: float):
    return int(value) if value == int(value) else value


def error(message: str, status: int, headers=None) -> Response:
    return _json({"error": message}, status, headers)


@bp.errorhandler(QueryError)
def bad_query(exc):
    return error(str(exc), 400)


@bp.get("/api/config")
def config():
    service = _service()
    c = service.config
    t = c.thresholds
    return _json({
        "version": c.version, "variants": list(c.variants), "source": c.source,
        "scrape_interval_s": c.scrape_interval, "verdict_window_s": _whole(c.verdict_window),
        "ranges": list(RANGES),
        "retention": {"raw_s": _whole(c.raw_retention), "rollup_s": _whole(c.rollup_retention),
                      "rollup_step_s": ROLLUP_STEP},
        "thresholds": {"error_ratio_factor": t.error_ratio_factor,
                       "error_ratio_margin": t.error_ratio_margin,
                       "latency_p95_factor": t.latency_p95_factor,
                       "latency_p95_margin_s": t.latency_p95_margin_s,
                       "min_requests_per_s": t.min_requests_per_s,
                       "min_requests": MIN_REQUESTS},
    })


@bp.get("/api/status")
def status():
    service = _service()
    now = service.clock.time()
    variants = {}
    for variant in service.config.variants:
        snapshot = service.status.snapshot(variant, now)
        snapshot["last_60s"] = service.collector.last_minute(variant, now)
        variants[variant] = snapshot
    return _json({"now": now, "storage": service.storage.status(), "variants": variants})


@bp.get("/api/series")
def series():
    service = _service()
    c = service.config
    first, last, step = queries.window(request.args, service.clock.time(), c.scrape_interval)
    variants = queries.variants_arg(request.args, c.variants)
    return _json(queries.series(service.storage, c.scrape_interval, first, last, step,
                                variants))


@bp.get("/api/breakdown")
def breakdown():
    service = _service()
    c = service.config
    first, last, step = queries.window(request.args, service.clock.time(), c.scrape_interval)
    variants = queries.variants_arg(request.args, c.variants)
    by = request.args.get("by", "model")
    return _json(queries.breakdown(service.storage, by, first, last + step, variants))


@bp.get("/api/export.csv")
def export_csv():
    service = _service()
    c = service.config
    first, last, step = queries.window(request.args, service.clock.time(), c.scrape_interval)
    variants = queries.variants_arg(request.args, c.variants)
    result = queries.series(service.storage, c.scrape_interval, first, last, step, variants)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(first))
    return Response(queries.to_csv(result), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="zai-dashboard-{stamp}.csv"',
        "Cache-Control": "no-store"})


@bp.get("/api/verdict")
def verdict():
    return _json(_service().verdict())


@bp.get("/api/events")
def events():
    service = _service()
    c = service.config
    text = request.headers.get("Last-Event-ID") or request.args.get("since")
    last_id = None
    if text:
        try:
            last_id = int(float(text))
        except ValueError:
            return error("Last-Event-ID (or since) must be a tick id (unix seconds)", 400)
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if sock is not None:
        # A fixed send buffer: a client that stops reading then shows in its bounded queue
        # within a few ticks, instead of hiding megabytes in an autotuned kernel buffer.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass
    try:
        client, backlog = service.broker.subscribe(last_id, sock)
    except OverCapacity:
        return error(f"too many live clients (at most {c.max_clients}); retry later", 503,
                     {"Retry-After": str(RETRY_AFTER_S)})
    hello = event("hello", {"variants": list(c.variants), "scrape_interval_s": c.scrape_interval,
                            "last_id": _id_text(service.broker.last_id),
                            "heartbeat_s": _whole(c.heartbeat_interval)})
    clock = service.clock
    heartbeat = c.heartbeat_interval

    def stream():
        try:
            yield f"retry: {RETRY_MS}\n\n".encode() + hello + b"".join(backlog)
            next_beat = time.monotonic() + heartbeat
            while not client.dropped:
                try:
                    item = client.queue.get(timeout=max(0.0, next_beat - time.monotonic()))
                except queue.Empty:
                    item = None
                if item is CLOSE:
                    return
                if item is not None:
                    yield item
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + heartbeat
                    yield event("heartbeat", {"now": clock.time()})
        finally:
            service.broker.unsubscribe(client)

    return Response(stream(), mimetype="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _id_text(value):
    return None if value is None else str(value)


@bp.get("/api/", defaults={"rest": ""})
@bp.get("/api/<path:rest>")
def unknown(rest: str):
    return error(f"no such endpoint: /api/{rest}", 404)
