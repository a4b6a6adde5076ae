"""Sending an answer over the wire, with the pacing and transport faults a scenario asks for.

An answer is a `Plan`: a status, headers and either a whole body or a list of SSE events. The
send functions return the status to record: 0 when the fake broke the connection on purpose.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from aiohttp import web

from .scenarios import Scenario

JSON_HEADERS = (("Content-Type", "application/json"),)
SSE_HEADERS = (("Content-Type", "text/event-stream; charset=utf-8"),
               ("Cache-Control", "no-cache"))
_FOREVER = 24 * 3600.0
_RST = struct.pack("ii", 1, 0)


class Plan:
    __slots__ = ("status", "headers", "body", "events", "joined")

    def __init__(self, status=200, headers=JSON_HEADERS, body=None, events=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.events = events
        # Streams without pacing are written in one go: the cheapest path for benchmarks.
        self.joined = b"".join(events) if events is not None else None

    @property
    def streamed(self) -> bool:
        return self.events is not None


def reset_connection(request: web.BaseRequest) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        except OSError:
            pass
    transport.abort()


def _headers(plan: Plan, scenario: Scenario) -> list[tuple[str, str]]:
    extra = scenario.extra_headers()
    return list(plan.headers) + extra if extra else plan.headers


async def _start(request, plan: Plan, scenario: Scenario, length: int | None
                 ) -> web.StreamResponse:
    response = web.StreamResponse(status=plan.status, headers=_headers(plan, scenario))
    if length is not None:
        response.content_length = length
    await response.prepare(request)
    return response


async def send(request: web.BaseRequest, plan: Plan, scenario: Scenario
               ) -> tuple[web.StreamResponse, int]:
    """Send `plan` as `scenario` says. Returns the response object and the status to record."""
    delay = scenario.get_float("first_delay_ms", 0.0)
    if delay:
        await asyncio.sleep(delay / 1000)
    name = scenario.name
    if name in ("ok", "large", "error", "status", "stream_error"):
        if not plan.streamed:
            return web.Response(status=plan.status, body=plan.body,
                                headers=_headers(plan, scenario)), plan.status
        return await _send_stream(request, plan, scenario), plan.status
    return await _FAULTS[name](request, plan, scenario)


async def _send_stream(request, plan: Plan, scenario: Scenario) -> web.StreamResponse:
    response = await _start(request, plan, scenario, None)
    interval = scenario.get_float("interval_ms", 0.0) / 1000
    if interval <= 0:
        await response.write(plan.joined)
    else:
        for index, event in enumerate(plan.events):
            if index:
                await asyncio.sleep(interval)
            await response.write(event)
    await response.write_eof()
    return response


def _default_after(plan: Plan, scenario: Scenario) -> int:
    """`after`: events for a stream (default 2), bytes for a body (default half)."""
    if plan.streamed:
        return scenario.get_int("after", 2)
    return scenario.get_int("after", max(len(plan.body) // 2, 1))


async def _send_prefix(request, plan: Plan, scenario: Scenario, after: int):
    """Headers (with the full Content-Length for a body) and the first `after` events/bytes."""
    if plan.streamed:
        response = await _start(request, plan, scenario, None)
        interval = scenario.get_float("interval_ms", 0.0) / 1000
        for index, event in enumerate(plan.events[:after]):
            if index and interval > 0:
                await asyncio.sleep(interval)
            await response.write(event)
    else:
        response = await _start(request, plan, scenario, len(plan.body))
        if after > 0:
            await response.write(plan.body[:after])
    return response


async def _reset_before(request, plan, scenario):
    reset_connection(request)
    return web.Response(), 0


async def _reset_mid(request, plan, scenario):
    response = await _send_prefix(request, plan, scenario, _default_after(plan, scenario))
    # Let the prefix reach the socket before the RST, or the peer may see nothing at all.
    await asyncio.sleep(0.01)
    reset_connection(request)
    return response, 0


async def _stall(request, plan, scenario):
    response = await _send_prefix(request, plan, scenario, _default_after(plan, scenario))
    await asyncio.sleep(_FOREVER)
    return response, plan.status


async def _hang(request, plan, scenario):
    await asyncio.sleep(_FOREVER)
    return web.Response(), 0


async def _drip(request, plan, scenario):
    data = plan.joined if plan.streamed else plan.body
    response = await _start(request, plan, scenario, None if plan.streamed else len(data))
    interval = scenario.get_float("byte_interval_ms", 50.0) / 1000
    step = max(scenario.get_int("bytes_per_write", 1), 1)
    for offset in range(0, len(data), step):
        if offset and interval > 0:
            await asyncio.sleep(interval)
        await response.write(data[offset:offset + step])
    await response.write_eof()
    return response, plan.status


async def _truncated_json(request, plan, scenario):
    if plan.streamed:
        keep = scenario.get_int("after", len(plan.events) // 2)
        cut = plan.events[keep] if keep < len(plan.events) else b"data: {\"id\":"
        data = b"".join(plan.events[:keep]) + cut[:len(cut) // 2]
        response = await _start(request, plan, scenario, None)
    else:
        data = plan.body[:scenario.get_int("after", len(plan.body) // 2)]
        response = await _start(request, plan, scenario, len(data))
    await response.write(data)
    await response.write_eof()
    return response, plan.status


async def _empty_200(request, plan, scenario):
    response = await _start(request, plan, scenario, None if plan.streamed else 0)
    await response.write_eof()
    return response, plan.status


_FAULTS = {
    "reset_before": _reset_before,
    "reset_mid": _reset_mid,
    "stall": _stall,
    "hang": _hang,
    "drip": _drip,
    "truncated_json": _truncated_json,
    "empty_200": _empty_200,
}
