"""Helpers for tests that put the raw-socket upstream (tools/raw_upstream.py) behind the proxy and
talk to the proxy with the official SDKs: each family's answers as an upstream sends them, and
each family's call as a client makes it."""

from __future__ import annotations

import json


from tools.sdks import anthropic_client, openai_client
from tools.raw_upstream import anthropic_sse, openai_sse, response

FAMILIES = ("openai", "anthropic")
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
UPSTREAM_PATHS = {"openai": "/api/paas/v4/chat/completions",
                  "anthropic": "/api/anthropic/v1/messages"}
USAGE = {"input": 7, "output": 3}


def body(family: str, stream: bool = False) -> dict:
    """A request body of `family`, as a client would send it."""
    out = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if family == "anthropic":
        out["max_tokens"] = 16
    return out


def whole(family: str, text: str) -> bytes:
    """The JSON of a whole answer saying `text`, with usage (USAGE)."""
    if family == "anthropic":
        payload = {"id": "msg_raw", "type": "message", "role": "assistant", "model": "glm-4.7",
                   "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                   "stop_sequence": None,
                   "usage": {"input_tokens": USAGE["input"], "output_tokens": USAGE["output"]}}
    else:
        payload = {"id": "chatcmpl-raw", "object": "chat.completion", "created": 0,
                   "model": "glm-4.7", "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant",
                                                                "content": text}}],
                   "usage": {"prompt_tokens": USAGE["input"],
                             "completion_tokens": USAGE["output"],
                             "total_tokens": USAGE["input"] + USAGE["output"]}}
    return json.dumps(payload).encode()


def events(family: str, texts, terminal: bool = True) -> bytes:
    """A stream of `texts` in `family`'s events, with (or without) its terminal event."""
    if family == "anthropic":
        return anthropic_sse(texts, stop=terminal)
    return openai_sse(texts, done=terminal)


def whole_answer(family: str, text: str, **kwargs) -> list:
    return response(200, whole(family, text), content_type="application/json", **kwargs)


def stream_answer(family: str, texts, terminal: bool = True, **kwargs) -> list:
    return response(200, events(family, texts, terminal), content_type="text/event-stream",
                    **kwargs)


def client(family: str, proxy_url: str, key: str = "any-client-key"):
    if family == "anthropic":
        return anthropic_client(base_url=proxy_url, api_key=key, max_retries=0, timeout=30)
    return openai_client(base_url=proxy_url + "/v1", api_key=key, max_retries=0, timeout=30)


def ask(family: str, proxy_url: str, stream: bool = False, key: str = "any-client-key") -> str:
    """What an SDK user gets: the answer's text; the SDK's exception if it sees an error."""
    sdk = client(family, proxy_url, key)
    request = body(family, stream)
    if family == "anthropic":
        if stream:
            with sdk.messages.stream(**{k: v for k, v in request.items() if k != "stream"}) as s:
                return s.get_final_text()
        return sdk.messages.create(**request).content[0].text
    if stream:
        return "".join(chunk.choices[0].delta.content or ""
                       for chunk in sdk.chat.completions.create(**request) if chunk.choices)
    return sdk.chat.completions.create(**request).choices[0].message.content
