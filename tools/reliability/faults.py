"""The upstream fault matrix as data: each fault, and what the client and the metrics must show.

Every fault runs on both API families, streaming and not. The proxy under test retries once
(MAX_RETRIES=1), so a retried failure costs two upstream attempts per client request; only
failures before the upstream's status line and Z.AI's "not processed" answers (429 with a
retried class, 503, 529) are retried: once the upstream answered, one attempt is all.

Most faults are scenarios of the fake Z.AI; those at the byte level, which it cannot produce
(interim responses, invalid heads, compressed bodies, streams ending early), are scripts of the
raw-socket upstream (raw_faults.py), named by the same header.

Expectation kinds
  error         the proxy's own error: `status`, JSON in the family's format, `code` (OpenAI)
  verbatim      the upstream's answer passed through unchanged (status and body, byte for byte)
  ok            200, byte for byte what the upstream sent
  stream_error  200, the upstream's events unaltered, then one error event in the family's format
                carrying `code`, and a clean end of stream
"""

from __future__ import annotations

import dataclasses

RETRIED = 2          # attempts per client request for a retried failure (MAX_RETRIES=1)

# Z.AI business codes → the class the proxy must report (zai_errors.py's table, restated here so
# that a change there shows up as a mismatch instead of silently moving the expectation).
ZAI_CODE_CLASSES = {
    "1000": "auth", "1001": "auth", "1002": "auth", "1003": "auth", "1004": "auth",
    "1113": "account", "1210": "bad_request", "1211": "bad_request", "1214": "bad_request",
    "1261": "bad_request", "1301": "content", "1302": "concurrency", "1303": "frequency",
    "1304": "daily_limit", "1305": "frequency", "1308": "quota", "1309": "account",
    "1310": "quota", "1311": "account", "1312": "congestion", "1313": "frequency",
    "1399": "unknown",   # a code the proxy does not know: the metric label is "other"
}
RETRIED_CLASSES = frozenset({"concurrency", "frequency", "congestion", "overloaded", "unknown"})
# One code per class, for the fast run.
FAST_CODES = ("1002", "1113", "1214", "1301", "1302", "1303", "1304", "1308", "1309", "1312",
              "1399")

# Known proxy findings (docs/reliability.md has the details and the proposed fixes).
F_TRUNCATED_STREAM = "F1"
F_STALL_LABEL = "F2"
F_UPSTREAM_503 = "F3"


@dataclasses.dataclass(frozen=True)
class Expect:
    kind: str
    status: int = 200
    code: str | None = None          # proxy error code (OpenAI body / stream error event)
    error_type: str | None = None    # zai_proxy_upstream_errors_total label that must grow
    attempts: int = 1                # upstream attempts per client request
    retry_reason: str | None = None  # zai_proxy_retry_attempts_total label of the retries
    zai_class: str | None = None     # X-Zai-Error-Class and zai_proxy_zai_errors_total{class}
    zai_code: str | None = None
    retry_after: bool = False        # the answer must carry Retry-After
    should_retry: str | None = None  # the answer's x-should-retry ("true" / "false" / "absent")
    finding: str = ""

    def describe(self) -> str:
        if self.kind == "ok":
            what = "200 byte-exact"
        elif self.kind == "verbatim":
            what = f"{self.status} upstream body verbatim"
        elif self.kind == "stream_error":
            what = f"200 + {self.code} error event, clean end"
        else:
            what = f"{self.status} {self.code}"
        parts = [what]
        if self.error_type:
            parts.append(f"errors{{{self.error_type}}}×{self.attempts}")
        if self.zai_class:
            parts.append(f"class {self.zai_class}")
        if self.retry_after:
            parts.append("Retry-After")
        if self.should_retry:
            parts.append(f"x-should-retry {self.should_retry}")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    scenario: str | None       # X-Fake-Scenario (None: a normal answer)
    plain: Expect
    stream: Expect
    # "fake": the fake Z.AI; "closed": an origin that refuses connections; "raw": the raw-socket
    # upstream playing raw_faults.SCRIPTS[scenario].
    upstream: str = "fake"
    # Scenario of the byte-exact reference: None means `scenario` itself, "" the normal answer.
    reference: str | None = None
    # Waits for the proxy's idle timeout (stalls, hangs), so runs on a proxy with a short one.
    # Every other fault runs on a proxy with a long one: the in-process fake shares its GIL with
    # the test's clients and, on a loaded machine, can pause longer than the short timeout,
    # which would turn a healthy answer or an immediate reset into an upstream timeout.
    slow: bool = False
    answer_bytes: int = 0      # size of a very large answer (memory bounds scale with it)


def _error(status, code, error_type, reason, attempts=RETRIED, finding=""):
    return Expect("error", status, code, error_type, attempts, reason, finding=finding)


def _answered(status, code, error_type, finding=""):
    """The proxy's error for an answer that broke after its status line: never sent again."""
    return Expect("error", status, code, error_type, 1, None, finding=finding)


def _stream_error(code, error_type, finding=""):
    return Expect("stream_error", 200, code, error_type, finding=finding)


def _both(expect: Expect) -> tuple[Expect, Expect]:
    return expect, expect


def _status(code: int, body: str = "json") -> Fault:
    if code in (503, 529):   # overloaded: retried, and every 503/529 we send has Retry-After
        finding = F_UPSTREAM_503 if code == 503 else ""
        expect = Expect("verbatim", code, None, str(code), RETRIED, "overloaded",
                        zai_class="overloaded", zai_code="other", retry_after=True,
                        should_retry="true", finding=finding)
    else:                    # other 5xx: never sent again; the client's own policy decides
        expect = Expect("verbatim", code, None, str(code), 1, zai_class="server",
                        zai_code="other", should_retry="absent")
    name = f"{code} storm" + (f" ({body} body)" if body != "json" else "")
    return Fault(name, f"status;code={code};body={body}", *_both(expect))


def _zai_code(code: str, status: int = 429, name: str = "") -> Fault:
    cls = ZAI_CODE_CLASSES[code]
    label = "other" if code == "1399" else code
    if cls == "auth":   # Z.AI refused the proxy's own key: the proxy's 502, never retried
        expect = Expect("error", 502, "upstream_auth_failed", str(status), 1, zai_class=cls,
                        zai_code=label, should_retry="false")
    else:               # the body verbatim; Retry-After only where a retry can help
        retried = cls in RETRIED_CLASSES
        expect = Expect("verbatim", status, None, str(status), RETRIED if retried else 1,
                        cls if retried else None, zai_class=cls, zai_code=label,
                        retry_after=retried, should_retry="true" if retried else "false")
    return Fault(name or f"429 storm code {code}", f"error;code={code};status={status}",
                 *_both(expect))


def upstream_faults(full: bool) -> list[Fault]:
    large = 5_000_000 if full else 1_000_000
    faults = [
        Fault("connection refused", None,
              *_both(_error(502, "upstream_connection", "upstream_refused", "network_error")),
              upstream="closed"),
        Fault("reset before response", "reset_before",
              *_both(_error(502, "upstream_connection", "upstream_reset", "network_error"))),
        Fault("reset mid-response", "reset_mid",
              _answered(502, "truncated_response", "truncated_response"),
              _stream_error("read_error", "read_error"), reference=""),
        Fault("stall mid-response", "stall",
              _answered(504, "upstream_timeout", "upstream_timeout", finding=F_STALL_LABEL),
              _stream_error("upstream_timeout", "upstream_timeout"), reference="", slow=True),
        Fault("stall after headers", "stall;after=0",
              *_both(_answered(504, "upstream_timeout", "upstream_timeout",
                               finding=F_STALL_LABEL)), slow=True),
        Fault("no answer (hang)", "hang",
              *_both(_error(504, "upstream_timeout", "upstream_timeout", "network_error")),
              slow=True),
        # Streams take 3–3.5 s, longer than the short idle timeout (2 s), which a pause between
        # writes 50 times as long as the usual one still stays under.
        Fault("slow drip", "drip;byte_interval_ms=40;bytes_per_write=16",
              *_both(Expect("ok")), reference="", slow=True),
        Fault("truncated JSON", "truncated_json",
              _answered(502, "truncated_response", "truncated_response"),
              _stream_error("truncated_response", "truncated_response",
                            finding=F_TRUNCATED_STREAM), reference=""),
        Fault("empty 200", "empty_200",
              _answered(502, "truncated_response", "truncated_response"),
              _answered(502, "empty_streaming", "empty_streaming")),
        Fault("upstream error event mid-stream", "stream_error;code=1305",
              *_both(Expect("ok"))),
        Fault(f"very large answer ({large // 1_000_000} MB)",
              f"large;bytes={large};chunk_bytes=65536", *_both(Expect("ok")),
              answer_bytes=large),
        _status(500), _status(502), _status(502, "html"), _status(503), _status(504),
        _status(529),
    ]
    faults += raw_faults()
    codes = ZAI_CODE_CLASSES if full else FAST_CODES
    faults += [_zai_code(code) for code in codes]
    # Codes Z.AI sends with their own status (401 auth: the proxy's 502; 400 bad request: passed
    # through).
    own_status = {"1002": 401, "1214": 400, "1301": 400} if full else {"1002": 401}
    faults += [_zai_code(code, status, f"{status} code {code}")
               for code, status in own_status.items()]
    return faults


def raw_faults() -> list[Fault]:
    """Byte-level faults (raw_faults.SCRIPTS): the same in the fast and the full run."""
    refused = _answered(502, "upstream_connection", "upstream_protocol")
    ends_early = (_answered(502, "truncated_response", "truncated_response"),
                  _stream_error("truncated_response", "truncated_response"))
    return [
        Fault("interim 103 and 102 before the answer", "raw_interim", *_both(Expect("ok")),
              upstream="raw"),
        Fault("101 switching protocols", "raw_switch", *_both(refused), upstream="raw"),
        Fault("status 999", "raw_status_999", *_both(refused), upstream="raw"),
        Fault("header fields a server cannot write", "raw_unwritable_fields",
              *_both(Expect("ok")), upstream="raw"),
        Fault("a header line that is not a field", "raw_not_a_field", *_both(refused),
              upstream="raw"),
        Fault("120 header fields", "raw_too_many_fields", *_both(refused), upstream="raw"),
        Fault("gzip despite Accept-Encoding: identity", "raw_gzip", *_both(Expect("ok")),
              upstream="raw"),
        Fault("ends early, close-delimited", "raw_ends_early_close", *ends_early,
              upstream="raw"),
        Fault("ends early, chunked and complete", "raw_ends_early_chunked", *ends_early,
              upstream="raw"),
    ]
