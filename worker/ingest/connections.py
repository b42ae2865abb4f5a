"""Connections of `sluice ingest`: a cap, a header deadline and size, idle keep-alive limits.

aiohttp has no cap on connections and no deadline for a request's headers (its keep-alive
timer runs from a connection's last answer, whatever arrives since), so a client could keep any
number of connections open by sending a header byte now and then (slowloris). Each connection
is therefore wrapped (``GuardedConnection``, an asyncio protocol around aiohttp's own) and
counted by the ``ConnectionGuard``:

* **Cap** (SLUICE_INGEST_MAX_CONNECTIONS). A new connection over it takes the place of the
  longest-idle keep-alive connection; when none is idle it is answered 503 with Retry-After and
  closed before anything of it is parsed.
* **Header deadline** (SLUICE_INGEST_HEADER_TIMEOUT), from a request's first byte to the end
  of its headers: past it the request is answered 408 and the connection closed.
* **Header size** (SLUICE_INGEST_MAX_HEADER_BYTES): a request line and headers larger than it
  are answered 431 and the connection closed, so unfinished headers hold little memory.
* **Idle keep-alive** (SLUICE_INGEST_KEEPALIVE_TIMEOUT): aiohttp's own keep-alive timer closes
  a connection that sent nothing for that long.

A refusal is written straight to the socket, which is then half-closed and read (and dropped)
for at most ``LINGER_SECONDS`` before it is closed, so the client reads the answer instead of
a reset.

The wrapper reads two attributes of aiohttp's ``RequestHandler``: ``_waiter`` (pending while
it waits for a request's headers) and ``_request_count`` (parsed requests);
``tests/unit/ingest/test_connections.py`` pins both against the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from worker.config import Settings
from worker.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

LINGER_SECONDS = 1.0
REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}


def raw_answer(status: int, message: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, as bytes for the socket."""
    body = orjson.dumps({"error": message})
    lines = [f"HTTP/1.1 {status} {REASONS[status]}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close"]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ConnectionGuard:
    """Counts the open connections and applies the limits of the module docstring."""

    def __init__(self, settings: Settings, metrics: IngestMetrics) -> None:
        self.max_connections = settings.ingest_max_connections
        self.header_timeout = settings.ingest_header_timeout
        self.max_header_bytes = settings.ingest_max_header_bytes
        self.retry_after = settings.ingest_retry_after
        self.metrics = metrics
        # Open connections, least recently active first: the longest-idle is found from the front.
        self._open: OrderedDict[GuardedConnection, None] = OrderedDict()
        metrics.connections.set_function(lambda: len(self._open))

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """The protocol factory of a listening socket: aiohttp's handler, wrapped."""
        return lambda: GuardedConnection(self, server())

    def admit(self, connection: GuardedConnection) -> bool:
        """Count a new connection, making room by closing the longest-idle one if needed."""
        if len(self._open) >= self.max_connections and not self._evict_idle():
            self.metrics.connection_closed("over_capacity")
            return False
        self._open[connection] = None
        return True

    def active(self, connection: GuardedConnection) -> None:
        """`connection` received data: it is the most recently active now."""
        if connection in self._open:
            self._open.move_to_end(connection)

    def forget(self, connection: GuardedConnection) -> None:
        self._open.pop(connection, None)

    def _evict_idle(self) -> bool:
        for connection in self._open:
            if connection.idle:
                self._open.pop(connection)
                connection.evict()
                self.metrics.connection_closed("idle_evicted")
                return True
        return False


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's limits."""

    def __init__(self, guard: ConnectionGuard, inner: RequestHandler) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self._inner_connected = False
        self._refused = False
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None

    # -- what the guard asks -----------------------------------------------------------------

    @property
    def _awaiting_request(self) -> bool:
        waiter = self.inner._waiter
        return waiter is not None and not waiter.done()

    @property
    def idle(self) -> bool:
        """Waiting for a request, and nothing of one received yet."""
        return (self._inner_connected and not self._refused and self._header_timer is None
                and self._awaiting_request)

    def evict(self) -> None:
        """Close an idle connection to make room for a new one."""
        self.inner.force_close()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.guard.admit(self):
            self._refuse(503, "too many connections; retry later", "over_capacity",
                         retry_after=self.guard.retry_after, counted=True)
            return
        self._inner_connected = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and dropped
        self.guard.active(self)
        awaiting = self._awaiting_request or self._header_timer is not None
        parsed = self.inner._request_count
        self.inner.data_received(data)
        if self.inner._request_count != parsed:
            self._headers_done()
        elif awaiting:
            self._header_bytes += len(data)
            if self._header_bytes > self.guard.max_header_bytes:
                self._refuse(431, f"the request line and headers are larger than "
                                  f"{self.guard.max_header_bytes} bytes "
                                  "(SLUICE_INGEST_MAX_HEADER_BYTES)", "header_too_large")
            elif self._header_timer is None:
                self._header_timer = asyncio.get_running_loop().call_later(
                    self.guard.header_timeout, self._headers_late)

    def eof_received(self) -> bool | None:
        if self._refused:
            return None
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self.guard.forget(self)
        if self._inner_connected:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if not self._refused:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self.inner.resume_writing()

    # -- limits ------------------------------------------------------------------------------

    def _headers_done(self) -> None:
        self._cancel_header_timer()
        self._header_bytes = 0

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._refused or not self._awaiting_request:
            return
        self._refuse(408, f"the request's headers did not arrive within "
                          f"{self.guard.header_timeout:g} s (SLUICE_INGEST_HEADER_TIMEOUT)",
                     "header_timeout")

    def _refuse(self, status: int, message: str, reason: str, retry_after: int | None = None,
                counted: bool = False) -> None:
        """Answer `status` on the socket, half-close it, drop what still arrives, close."""
        self._refused = True
        self._cancel_header_timer()
        self.guard.forget(self)
        if not counted:
            self.guard.metrics.connection_closed(reason)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(raw_answer(status, message, retry_after))
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
        log.debug("ingest: connection refused with %d (%s)", status, reason)
