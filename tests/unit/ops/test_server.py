import asyncio

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
