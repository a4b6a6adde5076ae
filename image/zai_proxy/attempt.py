"""One upstream attempt, from sending to its Outcome.

An attempt sends the request, judges what came back (answers.judge) and reads as much of it as
the decision needs: the whole body of an answer relayed as it came, of a Z.AI error to classify
and of a 2xx to check; only the first bytes of a stream. Every attempt is counted
(`zai_proxy_upstream_errors_total`) and reported to the rate limiter. What it does not do is
wait or try again: its Outcome carries the retry policy's decision, and the pipeline's loop
acts on it. Once the upstream has answered (a status line came), the policy never decides a
retry, except for the answers that say the request was not processed (Z.AI's classified 429,
503, 529).
"""

from __future__ import annotations

import dataclasses
import logging
import time

from flask import Response

from . import answers, errors, retry, zai_errors
from .buffered import BufferedResponse
from .errors import ClientGone, ProxyError
from .retry import Decision
from .streaming import StreamRelay
from .upstream import Answer, TransportError

log = logging.getLogger("zai_proxy.upstream")


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """What every attempt of one request sends."""
    method: str
    url: str
    headers: dict
    body: bytes | None


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision           # retry.FINAL when the answer is what the client gets
    answered: bool               # the upstream sent a status line: it received the request
    response: Response | BufferedResponse | None = None   # the client's answer, if this is the last
    error: ProxyError | None = None      # … or the error it gets instead

    def final(self) -> Response | BufferedResponse:
        if self.error is not None:
            raise self.error
        return self.response


def run(state, exchange, call: Call, index: int) -> Outcome:
    """Attempt number `index` (0-based)."""
    try:
        answer = state.upstream.send(call.method, call.url, call.headers, call.body)
    except TransportError as failure:
        return _no_answer(state, exchange, failure, index)
    status = exchange.upstream_status = answer.status
    if status < 300:
        state.upstream_auth.accepted()
    if status >= 400:
        state.metrics.upstream_error(status)
    how = answers.judge(answer, call.method)
    if how == answers.CLASSIFIED:
        return _classified(state, exchange, answer, index)
    state.limiter.observe("ok" if status < 400 else "error")
    if how == answers.VERBATIM:
        raw = _read_verbatim(state, exchange, answer)
        if status >= 400:   # never retried here: the client is told why, and not to retry
            return _final_error(state, exchange, answer, raw, _classify(state, answer, raw),
                                retry.FINAL)
        return Outcome(retry.FINAL, True, _buffered(exchange, answer, raw))
    if how == answers.STREAM:
        return _stream(state, exchange, answer, index)
    return _whole(state, exchange, answer, index)


def _no_answer(state, exchange, failure: TransportError, index: int) -> Outcome:
    """No answer to relay: nothing came back, or a head the proxy refuses. Only a failure
    before the upstream answered may be retried: once it has, the request was received and may
    be billing, so it is never sent again."""
    if exchange.inflight.cancel.is_set():
        raise ClientGone()
    expired = exchange.past_deadline()
    kind = errors.TIMEOUT if expired else failure.kind
    state.metrics.upstream_error(kind)
    state.limiter.observe("error")
    decision = state.retry_policy.on_transport_error(index, kind, answered=failure.answered)
    then = f"retrying in {decision.wait:g} s" if decision.retry else "giving up"
    log.warning("upstream attempt %d failed: %s (%s); %s", index + 1, kind,
                failure.detail or "no detail", then,
                extra={"fields": {"request_id": exchange.request_id, "error_type": kind,
                                  "detail": failure.detail, "attempt": index + 1,
                                  "answered": failure.answered}})
    error = (errors.past_deadline(state.config.total_timeout) if expired
             else errors.no_answer(kind, state.config.zai_base_url, failure.detail))
    return Outcome(decision, failure.answered, error=error)


def _classified(state, exchange, answer: Answer, index: int) -> Outcome:
    raw = _read_verbatim(state, exchange, answer)
    error = _classify(state, answer, raw)
    decision = state.retry_policy.on_zai_error(index, error)
    state.limiter.observe("frequency_429" if decision.slow_down else "other_429")
    # Built even when a retry is decided: the pipeline relays it should the total deadline
    # leave no time for the retry.
    return _final_error(state, exchange, answer, raw, error, decision)


def _classify(state, answer: Answer, raw: bytes) -> zai_errors.ZaiError:
    error = zai_errors.classify(answer.status, raw, answer.headers, time.time())
    state.metrics.zai_error(error.error_class, error.code)
    return error


def _final_error(state, exchange, answer: Answer, raw: bytes, error: zai_errors.ZaiError,
                 decision: Decision) -> Outcome:
    """An upstream error the client gets: its body verbatim, with what it is and whether to try
    again; or, when Z.AI refused the proxy's own key, the proxy's 502 (upstream_auth.py)."""
    if error.error_class == "auth":
        answer.close()
        state.upstream_auth.refused(answer.status, error.code)
        return Outcome(decision, True, error=errors.upstream_auth_failed(answer.status,
                                                                         error.code))
    if answer.status == 429:   # rate limits and quotas are per account: the key was taken
        state.upstream_auth.accepted()
    return Outcome(decision, True, _buffered(exchange, answer, raw, retry.client_headers(
        error, decision, answer.headers)))


def _stream(state, exchange, answer: Answer, index: int) -> Outcome:
    try:
        first = answer.read_some()
    except TransportError as failure:
        if exchange.inflight.cancel.is_set():
            raise ClientGone() from None
        return _bad_success(state, exchange, answer,
                            _failure_kind(exchange, failure, errors.EMPTY_STREAM), index)
    if not first:
        return _bad_success(state, exchange, answer, errors.EMPTY_STREAM, index)
    out = Response(StreamRelay(exchange, answer, first), status=answer.status,
                   headers=_client_headers(exchange, answer))
    out.headers["X-Accel-Buffering"] = "no"
    out.headers["Cache-Control"] = "no-cache"
    return Outcome(retry.FINAL, True, out)


def _whole(state, exchange, answer: Answer, index: int) -> Outcome:
    try:
        raw = _read_body(exchange, answer)
    except TransportError as failure:
        return _bad_success(state, exchange, answer,
                            _failure_kind(exchange, failure, errors.TRUNCATED), index)
    if answer.coding == answers.FAILED:
        return _bad_success(state, exchange, answer, errors.BAD_ENCODING, index)
    complete, parsed = answers.complete(answer, raw)
    if not complete:
        return _bad_success(state, exchange, answer, errors.TRUNCATED, index)
    if answer.coding != answers.KEPT:        # a body still encoded cannot be read for usage
        exchange.accountant.on_body(raw, parsed=parsed)
    exchange.usage = exchange.accountant.finish()
    return Outcome(retry.FINAL, True, _buffered(exchange, answer, raw))


def _bad_success(state, exchange, answer: Answer, kind: str, index: int) -> Outcome:
    """A 2xx that is not the answer it claims to be: empty, cut, undecodable or silent. The
    upstream answered, so it is not asked again."""
    answer.close()
    state.metrics.upstream_error(kind)
    decision = state.retry_policy.on_bad_success(index, kind)
    error = (errors.past_deadline(state.config.total_timeout) if exchange.past_deadline()
             else errors.bad_success(kind))
    return Outcome(decision, True, error=error)


def _failure_kind(exchange, failure: TransportError, otherwise: str) -> str:
    """The kind of a failure while reading a body: silence (the idle timeout, or the total
    deadline), a coding that stopped decoding, else `otherwise`."""
    if failure.timed_out or exchange.past_deadline():
        return errors.TIMEOUT
    if failure.kind == errors.BAD_ENCODING:
        return errors.BAD_ENCODING
    return otherwise


def _read_body(exchange, answer: Answer) -> bytes:
    """The whole body; TransportError when the upstream breaks off or falls silent (ClientGone
    when that is because the client went away and the watcher cut the upstream)."""
    try:
        raw = answer.read_all()
    except TransportError:
        answer.close()
        if exchange.inflight.cancel.is_set():
            raise ClientGone() from None
        raise
    return raw


def _read_verbatim(state, exchange, answer: Answer) -> bytes:
    """The whole body of an answer passed through as it is; 502/504 if it breaks."""
    try:
        return _read_body(exchange, answer)
    except TransportError as failure:
        kind = _failure_kind(exchange, failure, errors.READ_ERROR)
        state.metrics.upstream_error(kind)
        if exchange.past_deadline():
            raise errors.past_deadline(state.config.total_timeout) from None
        raise errors.answer_broke(kind) from None


def _client_headers(exchange, answer: Answer) -> list[tuple[str, str]]:
    kept, dropped = answers.client_headers(answer)
    if dropped:
        names = ", ".join(repr(name)[:66] for name in dropped[:8])
        log.warning("dropped %d upstream header field(s) that cannot be relayed: %s",
                    len(dropped), names,
                    extra={"fields": {"request_id": exchange.request_id,
                                      "dropped_headers": len(dropped)}})
    return kept


def _buffered(exchange, answer: Answer, raw: bytes,
              extra: dict | None = None) -> BufferedResponse:
    answer.close()
    out = BufferedResponse(raw, answer.status, _client_headers(exchange, answer))
    if "Content-Type" not in answer.headers:
        out.headers.pop("Content-Type", None)
    if extra:
        for name, value in extra.items():
            out.headers[name] = value
    return out
