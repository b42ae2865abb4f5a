"""The operators' HTTP endpoints: the status page, /metrics, and what a probe gets back, whatever
the checks do."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import Counter
from prometheus_client.registry import CollectorRegistry

from tests.support.status_pages import exposition_values
from worker.ops.server import OpsServer
from worker.ops.status_page import StatusPage


class _Readiness:
    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems

    async def __call__(self) -> dict[str, str]:
        return dict(self.problems)


def _server(readiness: _Readiness, page: StatusPage | None) -> OpsServer:
    registry = CollectorRegistry()
    Counter("sluice_records_consumed", "c", registry=registry).inc(3)
    return OpsServer("127.0.0.1", 0, registry, readiness, page=page)


async def test_the_status_page_is_served_with_a_policy_that_allows_nothing_from_elsewhere(
) -> None:
    server = _server(_Readiness({}), StatusPage("worker"))
    async with TestClient(TestServer(server.application())) as client:
        answer = await client.get("/")
        assert answer.status == 200
        assert answer.content_type == "text/html"
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
        assert (await answer.text()).startswith("<!doctype html>")
        fragment = await client.get("/?fragment=1")
        assert (await fragment.text()).startswith("<main ")


async def test_metrics_report_the_readiness_of_the_moment() -> None:
    readiness = _Readiness({"assignment": "no source partition assigned (yet)"})
    server = _server(readiness, None)
    async with TestClient(TestServer(server.application())) as client:
        scraped = exposition_values(await (await client.get("/metrics")).text())
        assert scraped[("sluice_ready", ())] == 0
        assert scraped[("sluice_readiness_problem", (("check", "assignment"),))] == 1
        readiness.problems = {}
        scraped = exposition_values(await (await client.get("/metrics")).text())
        assert scraped[("sluice_ready", ())] == 1
        assert not [key for key in scraped if key[0] == "sluice_readiness_problem"]
        assert (await client.get("/health/ready")).status == 200


async def test_a_process_without_a_page_answers_404_at_the_root() -> None:
    server = _server(_Readiness({}), None)
    async with TestClient(TestServer(server.application())) as client:
        assert (await client.get("/")).status == 404
        assert (await client.get("/health/live")).status == 200


async def test_a_check_that_never_answers_does_not_hold_up_metrics_or_the_page() -> None:
    async def hangs() -> dict[str, str]:
        await asyncio.Event().wait()
        return {}

    server = OpsServer("127.0.0.1", 0, CollectorRegistry(), hangs, page=StatusPage("worker"))
    server.readiness_timeout = 0.2
    async with TestClient(TestServer(server.application())) as client:
        scraped = exposition_values(await (await client.get("/metrics")).text())
        assert scraped[("sluice_ready", ())] == 0
        assert scraped[("sluice_readiness_problem", (("check", "readiness"),))] == 1
        assert "did not answer within" in await (await client.get("/")).text()
        assert (await client.get("/health/ready")).status == 503


async def test_a_check_that_raises_is_a_readiness_problem_not_a_500() -> None:
    async def raises() -> dict[str, str]:
        raise RuntimeError("boom")

    server = OpsServer("127.0.0.1", 0, CollectorRegistry(), raises)
    async with TestClient(TestServer(server.application())) as client:
        answer = await client.get("/health/ready")
        assert answer.status == 503
        assert "RuntimeError: boom" in (await answer.json())["problems"]["readiness"]
        assert (await client.get("/metrics")).status == 200


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

    assert await _ready(fine) == (200, {"status": "ready", "problems": {}, "notices": {}})
    assert await _ready(starting) == (
        503, {"status": "not ready", "problems": {"starting": "the worker is starting"},
              "notices": {}})


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


async def test_readiness_names_notices_and_stays_ready_for_them() -> None:
    async def nothing_wrong() -> dict[str, str]:
        return {}

    parked = {"sink.s3": "events[3]: the hourly merge into logs/x is parked"}
    server = OpsServer("127.0.0.1", 0, CollectorRegistry(), nothing_wrong,
                       notices=lambda: parked)
    answer = await server._ready(None)  # type: ignore[arg-type]
    assert answer.status == 200
    assert orjson.loads(answer.body) == {  # type: ignore[arg-type]
        "status": "ready", "problems": {}, "notices": parked}
