"""The built UI (dashboard/ui/dist, from `npm run build`) at `/`, with an SPA fallback.

Any path outside /api/ that is not a file of the build gets index.html, so a shared URL such as
`/?range=24h` or a client-side route loads the app. A missing asset under /assets/ is a 404 (an
HTML page in place of a script would only produce a confusing error). Hashed assets are cached
for good; index.html never is. Without a build, `/` says how to make one.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, send_from_directory
from werkzeug.security import safe_join

bp = Blueprint("ui", __name__)

# The page may load only what the service itself serves: no CDN, no external request.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zai-proxy dashboard</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The dashboard UI is not built</h1>
<p>The service is running and its API answers (<a href="/api/status">/api/status</a>,
<a href="/api/verdict">/api/verdict</a>), but there is no built UI in {where}.</p>
<p>Build it with <code>make dashboard</code>, or <code>cd dashboard/ui &amp;&amp; npm ci &amp;&amp;
npm run build</code>, then reload this page.</p>
</body></html>
"""


def _dist() -> str:
    return current_app.extensions["zai_dashboard"].config.ui_dir


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/", defaults={"path": ""})
@bp.get("/<path:path>")
def page(path: str):
    dist = _dist()
    index = os.path.join(dist, "index.html")
    if path:
        found = safe_join(dist, path)
        if found and os.path.isfile(found):
            response = send_from_directory(dist, path, max_age=0)
            if path.startswith("assets/"):
                response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            return _secure(response)
        if path.startswith("assets/"):
            return _secure(Response("not found\n", 404, mimetype="text/plain"))
    if not os.path.isfile(index):
        name = "dashboard/ui/dist"
        return _secure(Response(NOT_BUILT.format(where=f"<code>{name}</code>"), 200,
                                mimetype="text/html"))
    response = send_from_directory(dist, "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return _secure(response)
