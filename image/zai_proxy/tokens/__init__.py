"""Token counting for one process: the pipeline's single entry point into tokens and cost.

Built only when TOKEN_COUNTING_ENABLED is true; with counting off the pipeline never touches
this module, so no token work is done and no token series exist.
"""

from __future__ import annotations

import json

from .accounting import UsageAccountant, prepare_request
from .pricing import PriceTable
from .sse import SSEParser
from .tokens import TokenCounter


class TokenAccounting:
    def __init__(self, config, metrics):
        self.metrics = metrics
        self.counter = TokenCounter(config.tokenizer_encoding, config.token_count_max_chars,
                                    metrics)
        self.prices = PriceTable(config.token_prices)

    def begin(self, family: str, model: str | None, payload: dict, body: bytes):
        """Count the input and prepare the upstream body: (payload, body, accountant)."""
        estimate = self.counter.count_input(family, payload)
        upstream_payload, client_wants_usage = prepare_request(family, payload)
        if upstream_payload is not payload:
            # Only an OpenAI stream changes (include_usage is added); every other body is sent
            # exactly as the client wrote it.
            body = json.dumps(upstream_payload, ensure_ascii=False,
                              separators=(",", ":")).encode()
        accountant = UsageAccountant(family, model, estimate, client_wants_usage, self.prices,
                                     self.metrics, counter=self.counter)
        return upstream_payload, body, accountant

    @staticmethod
    def parser() -> SSEParser:
        return SSEParser()
