"""The fake's own endpoints under `/_fake/`, for tests and scripts in other processes.

GET    /_fake/requests[?limit=N]  recorded requests, oldest first (body as text and base64)
DELETE /_fake/requests            forget recorded requests and stats
GET    /_fake/stats               counts by path, by status and by path+status
GET    /_fake/scenario            the process default scenario (and per-path ones)
POST   /_fake/scenario[?path=SUF] set it: body `name;key=value` (text) or {"scenario": "..."};
                                  with ?path, only for paths ending in SUF (empty body: unset)
GET    /_fake/quota               the quota endpoint's payload
POST   /_fake/quota               replace it (JSON body)
DELETE /_fake/counters            reset fail_first counters (?key=K for one key)
POST   /_fake/reset               all of the above back to the start state
"""

from __future__ import annotations

import json

from aiohttp import web

from .scenarios import ScenarioError


def _json(obj, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(),
                        content_type="application/json")


async def handle(request: web.BaseRequest, state) -> web.Response:
    what = request.path[len("/_fake/"):].strip("/")
    method = request.method
    try:
        if what == "requests":
            if method == "GET":
                records = state.recorder.requests()
                limit = request.query.get("limit")
                if limit:
                    records = records[-int(limit):]
                return _json([r.to_dict() for r in records])
            if method == "DELETE":
                state.recorder.clear()
                return _json({"cleared": True})
        elif what == "stats" and method == "GET":
            return _json(state.recorder.stats())
        elif what == "scenario":
            if method == "POST":
                state.set_default(_scenario_text(await request.read()),
                                  request.query.get("path"))
            if method in ("GET", "POST"):
                return _json({"scenario": state.default.spec,
                              "paths": {k: v.spec for k, v in state.path_defaults.items()}})
        elif what == "quota":
            if method == "POST":
                state.set_quota(json.loads(await request.read()))
            if method in ("GET", "POST"):
                return _json(state.quota)
        elif what == "counters":
            if method == "DELETE":
                state.counters.reset(request.query.get("key"))
                return _json({"reset": True})
            if method == "GET":
                return _json(state.counters.snapshot())
        elif what == "reset" and method == "POST":
            state.reset()
            return _json({"reset": True})
    except (ScenarioError, ValueError) as exc:
        return _json({"error": {"code": "fake_control", "message": str(exc)}}, 400)
    return _json({"error": {"code": "fake_control",
                            "message": f"no control endpoint {method} {request.path}"}}, 404)


def _scenario_text(raw: bytes) -> str:
    text = raw.decode().strip()
    if text.startswith("{"):
        return json.loads(text).get("scenario") or ""
    return text
