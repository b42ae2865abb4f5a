"""A fault-injecting HTTP proxy for the tests, in front of a real server on loopback.

It forwards every request unchanged, unless told to misbehave:

* ``fail_next(n, status)``: answer the next n requests with `status` (e.g. 503) itself;
* ``outage()`` / ``restore()``: answer every request with 503 until restored;
* ``drop_next(n)``: close the connection of the next n requests without an answer;
* ``lose_answers(n, status)``: forward the next n requests, then answer `status` (503) instead of
  the server's answer, as when an answer is lost on its way: the client retries what was written;
* ``unauthorized = True``: answer 401 to everything;
* ``hold_uploads()`` / ``release()``: keep object uploads (PUTs outside ``_sluice/markers/``)
  waiting, then forward them: an upload that lands late, as a paused old owner's would;
* ``reject_uploads(code, status)`` / ``reject_uploads(None)``: answer object PUTs (outside
  ``_sluice/markers/``) with an S3 error of this code until told otherwise, as S3 does for a
  storage class or a KMS key it refuses;
* ``reject_bulk_items(ids, times, status, error_type)``: in ``_bulk`` requests, answer the items
  with these ``_id`` s with `status` (429) and `error_type` (``es_rejected_execution_exception``;
  ``cluster_block_exception`` with 403 for a read-only index) for their first `times` attempts,
  without forwarding them;
  the rest of the request goes to the server, and the answers are merged in order.

With ``signed=True`` it forwards requests byte for byte, Host and encodings included, so that
signed requests (S3's SigV4 signs the Host header) still verify upstream.

It runs its own event loop in a thread, so tests that wait synchronously (for a worker process,
say) do not stall it. Counters say what it saw: requests, bulk attempts per ``_id``, and the last
document line sent for each ``_id`` (its bytes, as the worker sent them).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import aiohttp
import orjson
from aiohttp import web

# Not forwarded; accept-encoding too, so that answers come back plain and can be merged.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
               "content-encoding", "host", "accept-encoding"}


# Dropped even by a signed proxy: they describe one connection, not the request.
_CONNECTION_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class FaultProxy:
    """See the module docstring."""

    def __init__(self, upstream: str, signed: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.signed = signed
        self.requests = 0
        self.bulk_attempts: Counter[str] = Counter()
        self.bulk_documents: dict[str, bytes] = {}
        self.unauthorized = False
        self._fail: list[int] = []
        self._drop = 0
        self._lose: list[int] = []
        self.lost_answers = 0
        self._down = False
        self._reject: dict[str, int] = {}
        self._reject_status = 429
        self._reject_type = "es_rejected_execution_exception"
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""
        self.held = 0
        self._holding = False
        self._released = asyncio.Event()
        self._upload_error: tuple[str, int] | None = None
        self.rejected_uploads = 0

    # --- control (from the test's thread) ------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._fail.extend([status] * count)

    def drop_next(self, count: int) -> None:
        with self._lock:
            self._drop += count

    def lose_answers(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._lose.extend([status] * count)

    def outage(self) -> None:
        self._down = True

    def restore(self) -> None:
        self._down = False

    def hold_uploads(self) -> None:
        self._loop.call_soon_threadsafe(self._released.clear)
        self._holding = True

    def release(self) -> None:
        self._holding = False
        self._loop.call_soon_threadsafe(self._released.set)

    def reject_uploads(self, code: str | None, status: int = 400) -> None:
        self._upload_error = (code, status) if code else None

    def reject_bulk_items(self, ids: set[str], times: int = 2, status: int = 429,
                          error_type: str = "es_rejected_execution_exception") -> None:
        with self._lock:
            self._reject.update({event_id: times for event_id in ids})
            self._reject_status = status
            self._reject_type = error_type

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        # A signed request's body and encodings pass untouched, both ways.
        self._session = aiohttp.ClientSession(
            auto_decompress=not self.signed,
            skip_auto_headers=["Content-Type"] if self.signed else None)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Signed: bodies pass as sent (aiohttp would inflate a gzip-encoded upload otherwise).
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=not self.signed)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    # --- the proxy -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        with self._lock:
            fail = self._fail.pop(0) if self._fail else None
            drop = self._drop > 0
            if drop:
                self._drop -= 1
        if drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        if self.unauthorized:
            return _error(401, "security_exception", "missing or invalid credentials")
        if self._down or fail:
            status = fail or 503
            return _error(status, "unavailable", "injected by the fault proxy")
        body = await request.read()
        upload_error = self._upload_error
        if upload_error and request.method == "PUT" and "/_sluice/markers/" not in request.path:
            self.rejected_uploads += 1
            return _s3_error(*upload_error)
        if self._holding and request.method == "PUT" and "/_sluice/markers/" not in request.path:
            self.held += 1
            await self._released.wait()
        if request.path.endswith("/_bulk") and request.method in ("POST", "PUT"):
            return await self._bulk(request, body)
        with self._lock:
            lose = self._lose.pop(0) if self._lose else None
        if lose:
            await self._send(request, body)  # written upstream; the client never hears it
            self.lost_answers += 1
            return _error(lose, "unavailable", "the answer was lost (fault proxy)")
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        status, headers, payload = await self._send(request, body)
        return web.Response(status=status, headers=headers, body=payload)

    async def _send(self, request: web.Request, body: bytes) -> tuple[int, dict, bytes]:
        assert self._session is not None
        dropped = _CONNECTION_HEADERS if self.signed else _HOP_BY_HOP
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        async with self._session.request(
            request.method, f"{self.upstream}{request.rel_url}", headers=headers, data=body
        ) as response:
            payload = await response.read()
            out = {k: v for k, v in response.headers.items() if k.lower() not in dropped}
            return response.status, out, payload

    async def _bulk(self, request: web.Request, body: bytes) -> web.Response:
        lines = [line for line in body.split(b"\n") if line.strip()]
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
        rejected_at: set[int] = set()
        for position, (action, document) in enumerate(pairs):
            meta = next(iter(orjson.loads(action).values()))
            event_id = str(meta.get("_id"))
            self.bulk_attempts[event_id] += 1
            self.bulk_documents[event_id] = document
            with self._lock:
                if self._reject.get(event_id, 0) > 0:
                    self._reject[event_id] -= 1
                    rejected_at.add(position)
        if not rejected_at:
            return await self._forward(request, body)
        forwarded = [pair for i, pair in enumerate(pairs) if i not in rejected_at]
        upstream_items: list[Any] = []
        if forwarded:
            payload = b"".join(a + b"\n" + d + b"\n" for a, d in forwarded)
            status, _, answer = await self._send(request, payload)
            if status != 200:
                return web.Response(status=status, body=answer,
                                    headers={"X-Elastic-Product": "Elasticsearch"})
            upstream_items = orjson.loads(answer)["items"]
        merged, upstream = [], iter(upstream_items)
        for position, (action, _doc) in enumerate(pairs):
            if position in rejected_at:
                op, meta = next(iter(orjson.loads(action).items()))
                merged.append({op: {"_index": meta.get("_index"), "_id": meta.get("_id"),
                                    "status": self._reject_status,
                                    "error": {"type": self._reject_type,
                                              "reason": "injected by the fault proxy"}}})
            else:
                merged.append(next(upstream))
        result = {"took": 1, "errors": True, "items": merged}
        return web.Response(status=200, body=orjson.dumps(result),
                            content_type="application/json",
                            headers={"X-Elastic-Product": "Elasticsearch"})


def _error(status: int, error_type: str, reason: str) -> web.Response:
    body = {"error": {"type": error_type, "reason": reason}, "status": status}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                        headers={"X-Elastic-Product": "Elasticsearch"})


def _s3_error(code: str, status: int) -> web.Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by the fault proxy</Message></Error>")
    return web.Response(status=status, body=body.encode(), content_type="application/xml")
