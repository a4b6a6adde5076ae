"""Server-sent events: one `tick` per collector tick to every browser, resumable by id.

Each tick is serialized once and kept in a replay ring (an hour of ticks, filled from the
database at start, so a browser that reconnects after a restart of the service gets what it
missed). A client names the last id it has (`Last-Event-ID`, or `?since=`); it first gets every
later tick in the ring exactly once and in order, then the live ones. An id older than the ring
gets an `event: reset` instead: the client refetches /api/series.

Every client has a bounded queue. A client that does not read fills its socket buffers, then its
queue; it is then disconnected (its socket shut down, which also frees the thread blocked writing
to it) and resumes with its last id when it reconnects. Beyond DASHBOARD_MAX_CLIENTS a new client
is refused (503 + Retry-After). `close()` (SIGTERM) ends every stream cleanly.
"""

from __future__ import annotations

import collections
import json
import queue
import socket
import threading

CLOSE = object()


class OverCapacity(Exception):
    pass


def event(name: str, data: dict, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    payload = json.dumps(data, separators=(",", ":"))
    return f"{head}event: {name}\ndata: {payload}\n\n".encode()


class Client:
    def __init__(self, size: int, sock):
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.sock = sock
        self.dropped = False

    def disconnect(self) -> None:
        """Frees a thread blocked writing to this client: its socket is shut down."""
        self.dropped = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Broker:
    def __init__(self, max_clients: int, queue_size: int, ring_size: int, interval: int = 1,
                 metrics=None):
        self.max_clients = max_clients
        self.interval = interval
        self.queue_size = queue_size
        self.metrics = metrics
        self._ring: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=ring_size)
        self._clients: set[Client] = set()
        self._lock = threading.Lock()
        self.closed = False

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    @property
    def last_id(self) -> int | None:
        with self._lock:
            return self._ring[-1][0] if self._ring else None

    def preload(self, ticks: list[tuple[int, dict]]) -> None:
        """Ticks from the database (oldest first), before any client connects."""
        with self._lock:
            for tick_id, data in ticks:
                self._ring.append((tick_id, event("tick", data, tick_id)))

    def publish(self, tick_id: int, data: dict) -> None:
        chunk = event("tick", data, tick_id)
        with self._lock:
            if self._ring and self._ring[-1][0] >= tick_id:
                # The same tick again (a restart within one interval): replace, keep order.
                kept = [item for item in self._ring if item[0] < tick_id]
                self._ring.clear()
                self._ring.extend(kept)
            self._ring.append((tick_id, chunk))
            clients = list(self._clients)
        for client in clients:
            try:
                client.queue.put_nowait(chunk)
            except queue.Full:
                self._drop(client, "slow")

    def _drop(self, client: Client, reason: str) -> None:
        if client.dropped:
            return
        client.disconnect()
        if self.metrics:
            self.metrics.sse_dropped.labels(reason).inc()

    def subscribe(self, last_id: int | None, sock=None) -> tuple[Client, list[bytes]]:
        """A new client and what it must be sent before the live ticks."""
        with self._lock:
            if self.closed or len(self._clients) >= self.max_clients:
                if self.metrics:
                    self.metrics.sse_rejected.inc()
                raise OverCapacity()
            client = Client(self.queue_size, sock)
            self._clients.add(client)
            backlog: list[bytes] = []
            if last_id is not None and self._ring:
                if last_id + self.interval < self._ring[0][0]:
                    backlog.append(event("reset", {}))
                else:
                    backlog = [chunk for tick_id, chunk in self._ring if tick_id > last_id]
            count = len(self._clients)
        if self.metrics:
            self.metrics.sse_clients.set(count)
        return client, backlog

    def unsubscribe(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)
            count = len(self._clients)
        if self.metrics:
            self.metrics.sse_clients.set(count)

    def close(self) -> None:
        """End every stream (SIGTERM): each client's generator returns after what it has."""
        with self._lock:
            self.closed = True
            clients = list(self._clients)
        for client in clients:
            try:
                client.queue.put_nowait(CLOSE)
            except queue.Full:
                client.disconnect()
