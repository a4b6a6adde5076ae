"""Token work, in one home.

    text.py        LimitedText: the text token work reads, kept up to a character budget
    walkers.py     the per-family message walkers: which text of a request or an answer counts
    counter.py     TokenCounter: tiktoken with bounded time, and the characters/4 estimate
    accountant.py  UsageAccountant: one request's usage, estimates and cost
                   (prepare_request: the upstream body that makes streams report usage)

`TokenAccounting` (here) is the pipeline's one entry point while TOKEN_COUNTING_ENABLED is
true: built once per process, it counts each request's input and hands out its accountant.
While counting is off the pipeline holds `NoTokenAccounting` instead: no token work is done
and no token series exist.
"""

from __future__ import annotations

import json

from ..pricing import PriceTable
from ..streaming import WholeEvents
from .accountant import UsageAccountant, prepare_request
from .counter import TokenCounter, estimate_chars

__all__ = ["NoTokenAccounting", "TokenAccounting", "TokenCounter", "UsageAccountant",
           "estimate_chars", "prepare_request"]


class TokenAccounting:
    def __init__(self, config, metrics):
        self.metrics = metrics
        self.counter = TokenCounter(config.tokenizer_encoding, config.token_count_max_chars,
                                    metrics)
        self.prices = PriceTable(config.token_prices)

    def begin(self, family: str, model: str | None, method: str, payload, body: bytes):
        """Count the input and prepare the upstream body: (body to send, accountant). Only a
        POST whose body is a JSON object is a generation to account for."""
        if method != "POST" or not isinstance(payload, dict):
            return body, NO_ACCOUNTANT
        estimate = self.counter.count_input(family, payload)
        upstream_payload, client_wants_usage = prepare_request(family, payload)
        if upstream_payload is not payload:
            # Only an OpenAI stream changes (include_usage is added); every other body is sent
            # exactly as the client wrote it.
            body = json.dumps(upstream_payload, ensure_ascii=False,
                              separators=(",", ":")).encode()
        accountant = UsageAccountant(family, model, estimate, client_wants_usage, self.prices,
                                     self.metrics, counter=self.counter)
        return body, accountant


class NoAccountant:
    """A request nobody accounts for: the answer is relayed and nothing is recorded."""

    def on_body(self, body: bytes, status: int = 200, parsed=None) -> None:
        pass

    def stream_events(self) -> WholeEvents:
        return WholeEvents()

    def finish(self, disconnected: bool = False, incomplete: bool = False) -> None:
        return None


NO_ACCOUNTANT = NoAccountant()


class NoTokenAccounting:
    """Token counting off: bodies go upstream untouched, no accountant records anything."""

    def begin(self, family, model, method, payload, body: bytes):
        return body, NO_ACCOUNTANT
