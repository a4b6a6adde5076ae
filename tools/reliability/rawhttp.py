"""HTTP/1.1 by hand over a socket: for clients that misbehave in ways `requests` cannot
(half-sent bodies, trickled headers, bad framing, hang-ups at a chosen moment)."""

from __future__ import annotations

import dataclasses
import socket
import time


def head(method: str, path: str, headers: dict | list | None = None,
         length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: proxy"]
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    lines += [f"{name}: {value}" for name, value in items]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


@dataclasses.dataclass
class RawAnswer:
    status: int              # 0 when the connection closed without an answer
    headers: dict            # lower-cased names
    body: bytes
    seconds: float


def read_answer(sock: socket.socket, timeout: float = 10.0) -> RawAnswer:
    """Read one response: the head, then Content-Length bytes (or up to the close)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return RawAnswer(0, {}, data, time.monotonic() - started)
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", -1))
        while length < 0 or len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return RawAnswer(status, headers, rest[:length] if length >= 0 else rest,
                         time.monotonic() - started)
    except (socket.timeout, ConnectionError):
        return RawAnswer(0, {}, data, time.monotonic() - started)


def exchange(port: int, request: bytes, timeout: float = 10.0) -> RawAnswer:
    with connect(port, timeout) as sock:
        sock.sendall(request)
        return read_answer(sock, timeout)


def trickle(sock: socket.socket, data: bytes, interval: float, until: float) -> None:
    """Send `data` one byte every `interval` seconds until it is all sent or `until` passes;
    stops quietly when the server closes the connection."""
    for index in range(len(data)):
        if time.monotonic() >= until:
            return
        try:
            sock.sendall(data[index:index + 1])
        except OSError:
            return
        time.sleep(interval)
