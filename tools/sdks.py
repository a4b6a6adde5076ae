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
"""

from __future__ import annotations

import importlib


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
