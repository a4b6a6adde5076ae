"""The official `openai` and `anthropic` SDKs, imported on first use.

Importing both costs about 4 s of CPU (thousands of pydantic models). Every pytest worker
imports every test module to collect it, and the demo imports its traffic generator before it
needs a client, so a plain import made each of them pay that before any work began. `openai`
here imports the real module the first time one of its names is read (`openai.OpenAI`,
`openai.APIError`); `from openai import X` elsewhere works as usual.

Not importlib's LazyLoader: pytest's collection looks at every object in a test module
(`__class__`, `pytestmark`, its fixture markers), which would load a lazy module at once. The
SDKs' public names never start with "_", so those and `pytestmark` are refused here without
importing anything.

`openai_client()` and `anthropic_client()` make the SDKs' clients as `openai.OpenAI(...)` and
`anthropic.Anthropic(...)` do, with one difference: every client shares one TLS context. Each SDK
client otherwise builds its own, loading the system's CA bundle, which costs 35 to 50 ms of CPU
under OpenSSL 3 (the suite's SDK tests make about 180 clients, all for plain HTTP on
loopback).
"""

from __future__ import annotations

import functools
import importlib
import ssl


class LazyModule:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        if attribute.startswith("_") or attribute == "pytestmark":
            raise AttributeError(attribute)     # introspection never imports the SDK
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


openai = LazyModule("openai")
anthropic = LazyModule("anthropic")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()     # what httpx builds per client, built once


def openai_client(**options):
    """`openai.OpenAI(**options)`, on the shared TLS context."""
    return openai.OpenAI(http_client=openai.DefaultHttpxClient(verify=_tls_context()), **options)


def anthropic_client(**options):
    """`anthropic.Anthropic(**options)`, on the shared TLS context."""
    return anthropic.Anthropic(http_client=anthropic.DefaultHttpxClient(verify=_tls_context()),
                               **options)
