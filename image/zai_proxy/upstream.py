"""The upstream boundary: one attempt sent, and every transport failure translated here, once.

A request's URL is prepared by `requests` (IDNA, percent-encoding; once per distinct URL) and
the request is sent through the urllib3 connection pool of `requests`' HTTPAdapter, with its
TLS settings (certifi's CA bundle, verification on). Session.request and HTTPAdapter.send are
skipped: cookie jars, hooks, environment merging, redirects, header-dict copies and response
wrapping are nothing a pass-through proxy wants, and skipping them halves the client's CPU per
call (`make bench`); http.client still validates every header field it sends. Never following
redirects and never keeping cookies are therefore by construction, and credentials in the URL
never become an Authorization header.

Whatever the HTTP client raises, sending or reading, leaves this module as a `TransportError`
whose `kind` names the cause from a bounded set (errors.TRANSPORT_KINDS, or READ_ERROR / TIMEOUT
once the upstream had answered) and whose `answered` says whether the upstream's status line had
arrived: once it has, the request was received and may be billing. Nothing past this module looks
at exception types or texts of the HTTP client.

Reading the head follows HTTP/1.1 where http.client does not (the rules are `answers.py`'s):
interim responses (1xx) are read and skipped on the same connection until the final status
(http.client skips `100` only, and takes any other 1xx for a final, empty answer); `101`, a
status beyond 599, a header block with lines that are not fields and invalid framing fields are
refused as `upstream_protocol`. A connection is handed back to urllib3's pool only once its
answer was read to the end its framing announced; a refused or broken answer closes it, and so
does an answer whose framing is doubtful, so no later request on it can read what was meant
for an earlier one.

`Answer` decodes a gzip or deflate body (answers.body_coding), incrementally for streams;
another coding is left as it came, for the pipeline to relay with its header.

The connection classes also record each upstream socket on the current request's InFlight
record, so that the disconnect watcher can cut a blocked upstream read the moment the client
goes away, and the request's total deadline can cut it when it passes.
"""

from __future__ import annotations

import errno
import functools
import http.client
import socket
import ssl
import threading

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NameResolutionError, ProtocolError, ReadTimeoutError

from . import answers, codings, errors, heads
from .config import Config
from .disconnect import InFlight

_current = threading.local()
# Retries are the pipeline's business: urllib3 raises the first error as it is. Built once:
# urllib3 would build the same object from `False` on every call.
_NO_RETRIES = urllib3.Retry(total=False, redirect=False)
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
_RESET = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
          http.client.RemoteDisconnected, http.client.IncompleteRead)


class TransportError(Exception):
    """The upstream could not be talked to: `kind` is the bounded cause, `answered` whether its
    status line had arrived, `detail` the operating system's or TLS library's words for it
    (never a URL or a header, so it is safe to log and to show)."""

    def __init__(self, kind: str, answered: bool, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.answered = answered
        self.detail = detail

    @property
    def timed_out(self) -> bool:
        return self.kind == errors.TIMEOUT


class _ConnectFailed(Exception):
    """Raised by our connection classes when connecting (TCP, then TLS) fails, so that a stalled
    TLS handshake is told apart from a silent upstream. urllib3 lets it through untouched."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def bind_inflight(inflight: InFlight | None) -> None:
    """Attach this thread's upstream sockets to `inflight` (None to detach)."""
    _current.inflight = inflight


def _record_socket(conn) -> None:
    inflight = getattr(_current, "inflight", None)
    if inflight is not None and conn.sock is not None:
        inflight.set_upstream_socket(conn.sock)


class _Refused(http.client.HTTPException):
    """An answer's head that the proxy refuses (answers.py says why): `detail` is safe to show."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class _Response(heads.Response):
    """http.client's response with HTTP/1.1's rules for the head (see the module docstring),
    its header block read by heads.parse_headers.
    Notes, for this thread, that a status line was read: from then on the upstream has
    answered, whatever goes wrong with the rest of its head."""

    def _read_status(self):
        for _ in range(answers.MAX_INTERIM + 1):
            version, status, reason = super()._read_status()
            _current.answered = True
            if not 100 <= status < 200 or answers.interim(status) == answers.REFUSE:
                problem = answers.status_problem(status)
                if problem:
                    raise _Refused(problem)
                return version, status, reason
            http.client._read_headers(self.fp)      # an interim head: read it, wait for more
        raise _Refused(f"more than {answers.MAX_INTERIM} interim (1xx) responses")

    def begin(self):
        super().begin()
        problem = answers.head_problem(self.msg)
        if problem:
            raise _Refused(problem)
        if not answers.reusable(self.msg):
            # http.client then drops the connection once the answer is read: never pooled.
            self.will_close = True


class _Tracked:
    response_class = _Response

    def connect(self):
        try:
            super().connect()
        except Exception as exc:
            raise _ConnectFailed(exc) from exc
        _record_socket(self)

    def request(self, *args, **kwargs):
        _record_socket(self)      # a pooled connection: connect() is not called again
        return super().request(*args, **kwargs)

    def getresponse(self, *args, **kwargs):
        _record_socket(self)
        return super().getresponse(*args, **kwargs)


class _TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _HandBack:
    def _put_conn(self, conn) -> None:
        # Called in the request's thread as its answer's end is read. The request lets go of
        # the socket first (under the lock its hang-up and deadline cuts take), so a late cut
        # cannot reach a connection that another request may already have taken.
        inflight = getattr(_current, "inflight", None)
        if conn is not None and inflight is not None and not inflight.hand_back_upstream():
            conn.close()      # already cut: a dead connection is never pooled
            conn = None       # (None keeps the pool's count of connections right)
        super()._put_conn(conn)


class _TrackedHTTPPool(_HandBack, HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(_HandBack, HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool,
                                                   "https": _TrackedHTTPSPool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def make_session(config: Config) -> requests.Session:
    """A plain pooled session, for calls that are not proxied requests (the quota poller)."""
    session = requests.Session()
    # No proxies/netrc from the environment: every call would re-read them, and the upstream
    # is fixed by configuration anyway.
    session.trust_env = False
    adapter = _Adapter(pool_connections=4, pool_maxsize=config.max_in_flight_per_process + 4,
                       max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Answer:
    """The upstream's answer: status and headers are in, the body is read on demand.

    Reading the body to its end hands the connection back to the pool; `close()` before then
    discards it, so a connection in an unknown state is never reused. `coding` says what
    becomes of the body's Content-Encoding (answers.IDENTITY, DECODED, KEPT or FAILED): a
    decoded body is what `read_some`/`read_all` return."""

    __slots__ = ("status", "headers", "coding", "_raw", "_decoder")

    def __init__(self, raw: urllib3.HTTPResponse, method: str = "POST"):
        self._raw = raw
        self.status = raw.status
        self.headers = raw.headers      # case-insensitive; repeated fields kept apart in items()
        self.coding, self._decoder = answers.body_coding(raw.headers, raw.status, method)

    def _read(self, size: int) -> bytes:
        try:
            return self._raw.read1(size, decode_content=False)
        except (Urllib3Error, http.client.HTTPException, OSError) as exc:
            raise translate(exc, answered=True) from None

    def read_some(self, size: int = 65536) -> bytes:
        """Whatever bytes have arrived (at most `size` of them, decoded: up to 16 × `size`),
        b"" at the end of the body. A body that stops decoding raises
        TransportError(bad_encoding)."""
        decoder = self._decoder
        if decoder is None:
            return self._read(size)
        try:
            while True:
                if decoder.has_pending:
                    out = decoder.feed(b"", size * 16)
                    if out:
                        return out
                data = self._read(size)
                if not data:
                    return b""
                out = decoder.feed(data, size * 16)
                if out:
                    return out
        except codings.DecodeError as exc:
            raise TransportError(errors.BAD_ENCODING, True, str(exc)) from None

    def read_all(self) -> bytes:
        """The whole body, decoded when its coding is one the proxy decodes. If it does not
        decode, the body as it came: `coding` is then FAILED and the header stays with it."""
        parts = []
        while True:
            chunk = self._read(65536)
            if not chunk:
                break
            parts.append(chunk)
        raw = b"".join(parts)
        if self._decoder is None:
            return raw
        try:
            return codings.decode_whole(self.headers.get("Content-Encoding", ""), raw)
        except codings.DecodeError:
            self.coding = answers.FAILED
            return raw

    def close(self) -> None:
        self._raw.close()


class Upstream:
    """Sends attempts to the configured origin over one connection pool."""

    def __init__(self, config: Config):
        self._adapter = _Adapter(pool_connections=4,
                                 pool_maxsize=config.max_in_flight_per_process + 4,
                                 max_retries=0)
        self._timeout = urllib3.Timeout(connect=config.connect_timeout,
                                        read=config.read_timeout)
        self._pool = None

    def send(self, method: str, url: str, headers: dict, body: bytes | None) -> Answer:
        """One attempt; raises TransportError. The body is left unread for the caller.

        `headers` must not frame the body: Content-Length is set here, as requests would."""
        if body is not None:
            headers["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        pool = self._pool or self._pool_for(url)
        _current.answered = False
        try:
            raw = pool.urlopen(method, _request_target(url), body=body, headers=headers,
                               retries=_NO_RETRIES, redirect=False, assert_same_host=False,
                               preload_content=False, decode_content=False,
                               timeout=self._timeout)
        except (_ConnectFailed, Urllib3Error, http.client.HTTPException, OSError) as exc:
            failure = translate(exc, answered=_current.answered)
            if failure.answered and not failure.timed_out:
                failure.kind = errors.PROTOCOL   # a status line, then a head that is not HTTP
            raise failure from None
        return Answer(raw, method)

    def _pool_for(self, url: str):
        # Every upstream URL is on the one configured origin: its pool is looked up once.
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        self._pool = self._adapter.get_connection_with_tls_context(prepared, verify=True)
        return self._pool

    def close(self) -> None:
        # urllib3 2's PoolManager.clear() forgets its pools without closing them: close the one
        # in use here, so its kept-alive connections go now rather than at garbage collection.
        if self._pool is not None:
            self._pool.close()
        self._adapter.close()


@functools.lru_cache(maxsize=1024)
def _request_target(url: str) -> str:
    """The request line's target of `url` (path and query), as requests prepares it: IDNA,
    percent-encoding of what must be encoded. The same URL always prepares the same way, and
    most requests go to a handful of URLs, so each is prepared once."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return prepared.path_url


def translate(exc: BaseException, answered: bool) -> TransportError:
    """The one place where the HTTP client's exceptions become a cause, read from the innermost
    error outwards (urllib3 wraps the operating system's error, sometimes twice)."""
    connecting = isinstance(exc, _ConnectFailed)
    chain = _chain(exc)
    detail = _detail(chain)
    timed_out = any(isinstance(e, (ReadTimeoutError, TimeoutError)) for e in chain)
    if answered:
        return TransportError(errors.TIMEOUT if timed_out else errors.READ_ERROR, True, detail)
    for err in reversed(chain):
        if isinstance(err, (NameResolutionError, socket.gaierror)):
            return TransportError(errors.DNS, False, detail)
        if isinstance(err, (ssl.SSLError, ssl.CertificateError, urllib3.exceptions.SSLError)):
            return TransportError(errors.TLS, False, detail)
        if isinstance(err, ConnectionRefusedError):
            return TransportError(errors.REFUSED, False, detail)
        if isinstance(err, OSError) and err.errno in _UNREACHABLE:
            return TransportError(errors.UNREACHABLE, False, detail)
        if isinstance(err, _RESET):
            return TransportError(errors.RESET, False, detail)
        if isinstance(err, http.client.BadStatusLine):
            return TransportError(errors.PROTOCOL, False, detail)
    if timed_out:
        return TransportError(errors.CONNECT_TIMEOUT if connecting else errors.TIMEOUT, False,
                              detail)
    return TransportError(errors.CONNECTION, False, detail)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: causes, contexts, and urllib3's (message, error) arguments."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 16:
        err = todo.pop(0)
        if err is None or any(err is s for s in seen):
            continue
        seen.append(err)
        if isinstance(err, _ConnectFailed):
            todo.append(err.cause)
        if isinstance(err, ProtocolError):
            todo.extend(a for a in err.args if isinstance(a, BaseException))
        todo.extend((err.__cause__, err.__context__))
    return seen


def _detail(chain: list[BaseException]) -> str:
    """The innermost operating-system or TLS wording, e.g. "Connection refused" or
    "certificate verify failed: self-signed certificate". urllib3's own messages are left out:
    they quote the host and the URL."""
    for err in reversed(chain):
        if isinstance(err, ssl.SSLCertVerificationError) and err.verify_message:
            return f"certificate verify failed: {err.verify_message}"
        if isinstance(err, ssl.SSLError) and err.reason:
            return str(err.reason).replace("_", " ").lower()
        if isinstance(err, socket.gaierror) and err.strerror:
            return err.strerror
        if isinstance(err, OSError) and err.strerror:
            return err.strerror
        if isinstance(err, (TimeoutError, ReadTimeoutError)):
            return "timed out"
        if isinstance(err, http.client.RemoteDisconnected):
            return "closed by the upstream without an answer"
        if isinstance(err, http.client.BadStatusLine):
            return "not an HTTP status line"
        if isinstance(err, _Refused):
            return err.detail
    return ""
