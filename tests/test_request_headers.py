"""headers.upstream_request_headers reads the client's fields from the WSGI environ in one pass:
the same fields, spelled and ordered as werkzeug's EnvironHeaders gives them, the same ones
dropped (hop-by-hop, Connection-listed, credentials, identity, forwarding, SDK telemetry)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import EnvironHeaders

from zai_proxy import config as config_module
from zai_proxy import headers as hdrs
from zai_proxy.errors import ANTHROPIC, OPENAI

ENVIRON = {
    "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/chat/completions", "QUERY_STRING": "",
    "SERVER_NAME": "proxy", "wsgi.input": None, "REMOTE_ADDR": "10.0.0.1",
    "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "77",
    "HTTP_CONTENT_TYPE": "text/plain", "HTTP_CONTENT_LENGTH": "5",
    "HTTP_HOST": "proxy", "HTTP_ACCEPT": "application/json",
    "HTTP_AUTHORIZATION": "Bearer client-key", "HTTP_X_API_KEY": "client-key",
    "HTTP_USER_AGENT": "OpenAI/Python 1.0", "HTTP_ACCEPT_ENCODING": "gzip",
    "HTTP_CONNECTION": "keep-alive, X-Hop", "HTTP_X_HOP": "dropped", "HTTP_KEEP_ALIVE": "5",
    "HTTP_X_STAINLESS_LANG": "python", "HTTP_X_FORWARDED_FOR": "1.2.3.4",
    "HTTP_X_REQUEST_ID": "client-id", "HTTP_ANTHROPIC_VERSION": "2023-06-01",
    "HTTP_OPENAI_BETA": "assistants=v2", "HTTP_X_CUSTOM_FIELD": "kept",
    "HTTP_TRANSFER_ENCODING": "chunked", "HTTP_EXPECT": "100-continue",
}


def _through_werkzeug(environ, family, config, request_id):
    """The same fields computed through werkzeug's EnvironHeaders, field by field."""
    client = EnvironHeaders(environ)
    extra = {t.strip().lower() for t in client.get("Connection", "").split(",") if t.strip()}
    out = {name: value for name, value in client.items()
           if name.lower() not in hdrs._DROP_REQUEST and name.lower() not in extra
           and not name.lower().startswith("x-stainless-")}
    return out | {k: v for k, v in hdrs.upstream_request_headers(
        {}, family, config, request_id).items()}


@pytest.fixture
def config():
    return config_module.load({"ZAI_API_KEY": "upstream-key-0123"})


@pytest.mark.parametrize("family", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("content_type", ["application/json", ""])
def test_the_fields_werkzeug_would_give_in_the_same_order(config, family, content_type):
    environ = ENVIRON | {"CONTENT_TYPE": content_type}
    ours = hdrs.upstream_request_headers(environ, family, config, "rid")
    theirs = _through_werkzeug(environ, family, config, "rid")
    assert list(ours.items()) == list(theirs.items())
    assert ours["X-Custom-Field"] == "kept" and ours["Anthropic-Version"] == "2023-06-01"
    assert ours["Content-Type"] == content_type if content_type else "Content-Type" not in ours
    for gone in ("Host", "X-Hop", "Keep-Alive", "X-Stainless-Lang", "X-Forwarded-For",
                 "Transfer-Encoding", "Expect", "Content-Length", "Connection"):
        assert gone not in ours
    assert ours["X-Request-Id"] == "rid" and ours["User-Agent"].startswith("zai-proxy/")
    credential = ours.get("x-api-key") or ours.get("Authorization")
    assert "upstream-key-0123" in credential and "client-key" not in ours.values()
