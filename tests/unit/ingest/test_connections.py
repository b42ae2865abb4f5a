"""Connections: a cap (an idle keep-alive connection makes room, else 503 with Retry-After), a
deadline and a size limit for a request's headers (slowloris), and aiohttp's internals the guard
reads, pinned."""

from __future__ import annotations

import asyncio
import inspect

import orjson
from aiohttp.web_protocol import RequestHandler

from tests.support.ingest_server import (
    TOKEN,
    RawClient,
    guard_settings,
    metric,
    post,
    serving,
)

EVENT = orjson.dumps({"type": "track", "event": "A", "userId": "u1", "messageId": "m1"})
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PARTIAL = b"POST /events HTTP/1.1\r\nHost: sluice\r\n"  # headers begun, never finished


def test_the_aiohttp_internals_the_guard_reads_are_there() -> None:
    # GuardedConnection reads RequestHandler._waiter (pending while start() waits for the next
    # request's headers) and RequestHandler._request_count (bumped per parsed request).
    start = inspect.getsource(RequestHandler.start)
    assert "self._waiter = loop.create_future()" in start and "await self._waiter" in start
    assert "self._request_count += 1" in inspect.getsource(RequestHandler.data_received)
    assert {"_waiter", "_request_count"} <= set(RequestHandler.__slots__)


async def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_a_connection_over_the_cap_gets_503_with_retry_after_when_none_is_idle() -> None:
    settings = guard_settings(ingest_max_connections=2)
    async with serving(settings) as server:
        busy = [await RawClient.connect(settings.ingest_port) for _ in range(2)]
        for client in busy:
            await client.send(PARTIAL)
        await _until(lambda: server.connections.open_connections == 2, "two connections open")
        refused = await RawClient.connect(settings.ingest_port)
        await refused.send(post("/events", EVENT, AUTH))
        status, headers, _ = await refused.answer()
        assert status == 503 and headers["retry-after"] == "5"
        assert await refused.closed_by_server()
        busy[0].close()
        await _until(lambda: server.connections.open_connections == 1, "one connection closed")
        served = await RawClient.connect(settings.ingest_port)
        await served.send(post("/events", EVENT, AUTH))
        assert (await served.answer())[0] == 200
        for client in (busy[1], served):
            client.close()
        assert metric(server, "sluice_ingest_connections_closed_total",
                      reason="over_capacity") == 1


async def test_an_idle_keep_alive_connection_makes_room_for_a_new_one() -> None:
    settings = guard_settings(ingest_max_connections=2)
    async with serving(settings) as server:
        idle = await RawClient.connect(settings.ingest_port)
        await idle.send(post("/events", EVENT, AUTH))
        assert (await idle.answer())[0] == 200  # then kept alive, idle
        busy = await RawClient.connect(settings.ingest_port)
        await busy.send(PARTIAL)
        await _until(lambda: server.connections.open_connections == 2, "two connections open")
        newcomer = await RawClient.connect(settings.ingest_port)
        await newcomer.send(post("/events", EVENT, AUTH))
        assert (await newcomer.answer())[0] == 200
        assert await idle.closed_by_server()
        for client in (busy, newcomer):
            client.close()
        assert metric(server, "sluice_ingest_connections_closed_total",
                      reason="idle_evicted") == 1


async def test_headers_that_do_not_arrive_in_time_get_408_and_the_connection_closed() -> None:
    settings = guard_settings(ingest_header_timeout=0.2)
    async with serving(settings) as server:
        slowloris = await RawClient.connect(settings.ingest_port)
        await slowloris.send(PARTIAL)
        status, headers, body = await slowloris.answer()
        assert status == 408 and "SLUICE_INGEST_HEADER_TIMEOUT" in orjson.loads(body)["error"]
        assert headers["connection"] == "close" and await slowloris.closed_by_server()
        await _until(lambda: server.connections.open_connections == 0, "the connection is gone")
        assert metric(server, "sluice_ingest_connections_closed_total",
                      reason="header_timeout") == 1


async def test_a_request_sent_in_pieces_within_the_deadline_is_served() -> None:
    async with serving(guard_settings(ingest_header_timeout=30)) as server:
        client = await RawClient.connect(server.settings.ingest_port)
        request = post("/events", EVENT, AUTH)
        for start in range(0, len(request), 7):
            await client.send(request[start:start + 7])
        assert (await client.answer())[0] == 200
        await client.send(post("/events", EVENT, AUTH))  # the same connection, kept alive
        assert (await client.answer())[0] == 200
        client.close()


async def test_headers_larger_than_the_limit_get_431_and_the_connection_closed() -> None:
    settings = guard_settings(ingest_max_header_bytes=1024)
    async with serving(settings) as server:
        client = await RawClient.connect(settings.ingest_port)
        await client.send(PARTIAL)
        for n in range(20):
            await client.send(f"X-Filler-{n}: {'a' * 100}\r\n".encode())
        status, _, body = await client.answer()
        assert status == 431 and "SLUICE_INGEST_MAX_HEADER_BYTES" in orjson.loads(body)["error"]
        assert await client.closed_by_server()
        assert metric(server, "sluice_ingest_connections_closed_total",
                      reason="header_too_large") == 1


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() -> None:
    async with serving(guard_settings(ingest_keepalive_timeout=0.2)) as server:
        client = await RawClient.connect(server.settings.ingest_port)
        await client.send(post("/events", EVENT, AUTH))
        assert (await client.answer())[0] == 200
        assert await client.closed_by_server()
        await _until(lambda: server.connections.open_connections == 0, "the connection is gone")
