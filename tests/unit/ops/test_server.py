"""The operators' HTTP endpoints: what a probe gets back, whatever the checks do."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest
from prometheus_client.registry import CollectorRegistry

from worker.ops.server import OpsServer

Readiness = Callable[[], Awaitable[dict[str, str]]]


async def _ready(check: Readiness) -> tuple[int, dict]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = OpsServer("127.0.0.1", port, CollectorRegistry(), check, sock)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/health/ready") as response:
            return response.status, orjson.loads(await response.read())
    finally:
        await server.stop()


async def test_readiness_answers_200_without_problems_and_503_with_them() -> None:
    async def fine() -> dict[str, str]:
        return {}

    async def starting() -> dict[str, str]:
        return {"starting": "the worker is starting"}

    assert await _ready(fine) == (200, {"status": "ready", "problems": {}})
    assert await _ready(starting) == (
        503, {"status": "not ready", "problems": {"starting": "the worker is starting"}})


async def test_a_readiness_check_that_raises_is_a_503_and_one_log_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> dict[str, str]:
        raise AssertionError("no client yet")

    with caplog.at_level(logging.WARNING):
        status, body = await _ready(broken)
    assert status == 503
    assert body["problems"] == {
        "readiness": "the readiness check failed: AssertionError: no client yet"}
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.exc_info is None and "AssertionError: no client yet" in record.getMessage()


async def test_unready_reasons_show_urls_without_user_information() -> None:
    async def down() -> dict[str, str]:
        return {"sink.s3": "bucket b: Could not connect to https://key:pa/ss@s3:8333/b"}

    status, body = await _ready(down)
    assert (status, body["problems"]) == (
        503, {"sink.s3": "bucket b: Could not connect to https://***@s3:8333/b"})
