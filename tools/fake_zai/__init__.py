"""A fake Z.AI upstream over real HTTP, shared by the tests, `make demo` and `make bench`.

Use it in-process (`FakeZai`, a server in a background thread) or standalone
(`python -m tools.fake_zai --port N [--scenario SPEC] [--processes K]`).

Surfaces (matched by path suffix, so `/api/paas/v4`, `/api/coding/paas/v4`, `/api/anthropic/v1`
or no prefix at all work alike)
  POST …/chat/completions          OpenAI chat: `chat.completion` JSON, or SSE
                                   `chat.completion.chunk` events ending `data: [DONE]`; the usage-only chunk (empty
                                   `choices`) only when `stream_options.include_usage` is true.
  GET  …/models                    model list (Anthropic shape when the path contains /anthropic)
  POST …/embeddings                one vector per input (base64 when `encoding_format=base64`)
  POST …/messages                  Anthropic message JSON, or `event:`/`data:` SSE: message_start
                                   (input_tokens = start_input_tokens, default 0, plus the cache
                                   fields), content_block_start, ping, content_block_delta × N,
                                   content_block_stop, message_delta (full usage), message_stop
  POST …/messages/count_tokens     {"input_tokens": prompt_tokens}
  GET  …/monitor/usage/quota/limit Z.AI's quota payload (`data.limits[]`), set with
                                   `FakeZai.set_quota()` / `POST /_fake/quota`
  anything else                    200 JSON echo: method, path, query, header names, body_bytes
  /_fake/…                         control endpoints (see `control.py`); never recorded

Choosing a scenario, first match wins
  1. header `X-Fake-Scenario: name;key=value;...`
  2. a suffix on the model: `"model": "glm-4.7@name;key=value"` (stripped before it is echoed)
  3. a default for paths ending in a suffix: `FakeZai.set_scenario(spec, path_suffix=...)`,
     `POST /_fake/scenario?path=SUFFIX` (for requests the proxy makes itself, e.g. quota polls)
  4. the process default: `--scenario`, `FakeZai.set_scenario()`, `POST /_fake/scenario`
A spec may start with a key (`finish_reason=length` means `ok;finish_reason=length`); values may
be percent-encoded. An unknown scenario or key, or a bad number, gets 400 with `X-Fake-Error: 1`.

Keys every scenario takes (they shape the normal answer that a fault is applied to)
  chunks=5                 streamed deltas (and words in a whole answer)
  chunk_text=…             text of every delta (default: words derived from seed and model)
  seed=0                   changes the generated words
  interval_ms=0            pause between stream events (0: the whole stream in one write)
  first_delay_ms=0         pause before the status line (time to first byte)
  prompt_tokens=12         input tokens (OpenAI prompt_tokens, Anthropic input_tokens)
  completion_tokens=chunks output tokens
  cached_tokens=0          OpenAI prompt_tokens_details.cached_tokens, Anthropic
                           cache_read_input_tokens
  cache_creation_tokens=0  Anthropic cache_creation_input_tokens
  start_input_tokens=0     Anthropic input_tokens in message_start (Z.AI sends 0 or a few)
  no_usage=1               no usage anywhere (body, usage chunk, message_start/message_delta)
  usage_in_last=1          OpenAI streams: usage on the finish_reason chunk, whatever the client
                           asked (as Z.AI has been seen to do), and no separate usage chunk
  finish_reason=stop       last chunk's finish_reason (Anthropic: stop→end_turn,
                           length→max_tokens, tool_calls→tool_use, others verbatim), e.g.
                           `network_error` or `sensitive` for a stream that ends badly
  dims=8                   embedding size
  reasoning_chunks=0       thinking deltas before the answer: OpenAI `reasoning_content`,
                           Anthropic a `thinking` block (index 0, signature_delta) before the
                           text block; counted in completion_tokens by default
  h.<Header>=value         extra response header
Usage is the same on every surface and in every form (whole, streamed), so a test can assert
exact counts; `total_tokens` = prompt + completion.

Scenarios
  ok                 the default
  error              Z.AI business error. status (default by code: 1000–1004 → 401,
                     1210–1215/1261/1301 → 400, else 429), code=1302, message (default: Z.AI's
                     text for the code), envelope=zai|flat|anthropic (zai:
                     {"error":{"code":"1302","message":…}}; flat: {"code":1302,"msg":…,
                     "success":false}; anthropic:
                     {"type":"error","error":{"type":…,"message":…}} with error_type= to
                     override the type), retry_after=S (Retry-After
                     header), retry_after_date=1 (send it as an HTTP-date S seconds ahead),
                     body_retry_after=S (a `retry_after` field beside the code),
                     reset_time=T (a `reset_time` field, and for 1308/1310 "Your limit will
                     reset at T" in the message; reset_field=0 keeps only the message).
                     On /anthropic paths a 429 to a request carrying `anthropic-beta` also gets
                     `anthropic-ratelimit-unified-status: rejected`.
  status             bare HTTP failure: code=503 (or status=; 529 on the Anthropic surface),
                     body=json|html|empty, message, retry_after
  fail_first         n=1 key=default fail_with=error: the first n requests carrying this key
                     fail with scenario `fail_with` (any scenario below or above, with the same
                     keys), later ones get `ok`. Counters are per key and per process; reset
                     them with `FakeZai.clear()` or `DELETE /_fake/counters[?key=K]`.
  reset_before       TCP RST before any response byte
  reset_mid          after=N: the first N stream events (default 2) or body bytes (default
                     half, with the full Content-Length announced), then TCP RST
  stall              after=N as reset_mid, then silence with the connection open (after=0:
                     headers only)
  hang               accept the request, never answer
  drip               byte_interval_ms=50 bytes_per_write=1: the answer a few bytes at a time
  truncated_json     200 whose JSON is cut (after=N bytes, default half, Content-Length of the
                     cut body); streams: the first half of the events, then half an event
  empty_200          200 with an empty body; streams: SSE headers, no bytes, clean end
  large              bytes=5000000 chunk_bytes=16384: an answer with that much content
  stream_error       after=2 code=1305 message error_type=overloaded_error: streams only; the
                     first N events then an error event (OpenAI `data: {"error":…}`,
                     Anthropic `event: error`), then the end. Whole answers are normal.
A record's `status` is 0 when the fake broke the connection on purpose and 499 when the client
left first.

Request bodies are recorded as received (no decompression); answers are never compressed.

Inspection: `FakeZai.requests` (`RecordedRequest`: method, path, query, headers, body, json(),
time, finished, scenario, status), `FakeZai.stats`, `.clear()`; over HTTP `GET/DELETE
/_fake/requests`, `GET /_fake/stats`. The log keeps the last `record_limit` (10k) requests.
"""

from .recorder import RecordedRequest
from .runner import FakeZai
from .scenarios import Scenario, ScenarioError, parse

__all__ = ["FakeZai", "RecordedRequest", "Scenario", "ScenarioError", "parse"]
