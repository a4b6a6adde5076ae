"""A design probe, not a product: the same relay job as zai-proxy on one asyncio event loop
(aiohttp server + aiohttp client, C HTTP parsers, one pooled upstream connector), with the
per-request work a real proxy keeps: JSON-parse the body for the model, inject the key, one JSON
log line, a request counter and a duration histogram. No threads, no WSGI, no `requests`.

    python -m bench.prototypes.aiohttp_relay --port P --upstream http://127.0.0.1:F

It answers the question the benchmark raises: what does the *server model and HTTP client*
cost, separately from what zai-proxy does per request? (see bench/README.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from prometheus_client import CollectorRegistry, Counter, Histogram

HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
       "trailer", "transfer-encoding", "upgrade", "host", "content-length", "authorization",
       "x-api-key", "accept-encoding"}
log = logging.getLogger("relay")


def build(upstream: str, key: str) -> web.Application:
    registry = CollectorRegistry()
    requests_total = Counter("relay_requests_total", "requests", ["status"], registry=registry)
    duration = Histogram("relay_request_duration_seconds", "duration", registry=registry)
    state = {}

    async def startup(app):
        state["session"] = ClientSession(
            connector=TCPConnector(limit=0, limit_per_host=0, force_close=False),
            timeout=ClientTimeout(total=None, sock_read=300), auto_decompress=False)

    async def cleanup(app):
        await state["session"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body = await request.read()
        try:
            model = json.loads(body).get("model") if body else None
        except ValueError:
            model = None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        headers["Authorization"] = f"Bearer {key}"
        path = "/api/paas/v4" + request.path[len("/v1"):]
        async with state["session"].request(request.method, upstream + path, data=body,
                                            headers=headers) as up:
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
            if up.headers.get("Content-Type", "").startswith("text/event-stream"):
                response = web.StreamResponse(status=up.status, headers=out_headers)
                response.headers["X-Accel-Buffering"] = "no"
                await response.prepare(request)
                async for chunk in up.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            else:
                response = web.Response(status=up.status, body=await up.read(),
                                        headers=out_headers)
        elapsed = time.monotonic() - started
        requests_total.labels(str(up.status)).inc()
        duration.observe(elapsed)
        log.info(json.dumps({"msg": "request", "path": request.path, "status": up.status,
                             "model": model, "duration_ms": round(elapsed * 1000, 2)}))
        return response

    async def ready(request):
        return web.Response(text="ok")

    app = web.Application()
    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get("/readyz", ready)
    app.router.add_route("*", "/v1/{rest:.*}", relay)
    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--key", default="bench-upstream-key-not-a-secret")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    try:
        import uvloop  # optional: only where installed
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(build(args.upstream, args.key), host="127.0.0.1", port=args.port,
                access_log=None, print=None, backlog=4096)
    return 0


if __name__ == "__main__":
    sys.exit(main())
