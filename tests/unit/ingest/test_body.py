"""Bodies held in memory share one budget (and those not yet verified a smaller part of it), and
must arrive at a minimum pace: over either, the request is refused at once and memory stays put."""

from __future__ import annotations

import asyncio
import base64

import orjson

from tests.support.ingest_server import (
    TOKEN,
    RawClient,
    guard_settings,
    metric,
    post,
    serving,
)
from tests.support.recording_producer import RecordingProducer
from worker.ingest.body import BodyBudget
from worker.ingest.server import IngestServer

EVENT = orjson.dumps({"type": "track", "event": "A", "userId": "u1", "messageId": "m1"})


def _ndjson(size: int) -> bytes:
    """NDJSON of about `size` bytes (one event per line)."""
    lines = (size // (len(EVENT) + 1)) or 1
    return (EVENT + b"\n") * lines


async def _wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def _budget(server: IngestServer) -> BodyBudget:
    return server.guard.budget


def test_a_budget_holds_what_fits_and_keeps_the_unverified_part_apart() -> None:
    budget = BodyBudget(total=100, unverified=40)
    assert budget.reserve(30, unverified=True) and budget.reserve(50, unverified=False)
    assert not budget.reserve(20, unverified=True)  # 30 + 20 > 40
    assert not budget.reserve(30, unverified=False)  # 80 + 30 > 100
    assert (budget.held, budget.held_unverified) == (80, 30)
    budget.release(30, 30)
    assert (budget.held, budget.held_unverified) == (50, 0)


async def test_a_body_that_does_not_fit_the_budget_gets_503_at_once_and_is_released() -> None:
    settings = guard_settings(ingest_body_budget_bytes=6144)
    producer = RecordingProducer()
    producer.hold = asyncio.Event()  # the first request keeps its body while it "produces"
    body = _ndjson(4000)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(settings, producer) as server:
        first = await RawClient.connect(settings.ingest_port)
        await first.send(post("/events", body, auth))
        await _wait_for(lambda: _budget(server).held == len(body), "the first body is held")
        second = await RawClient.connect(settings.ingest_port)
        await second.send(post("/events", body, auth))
        status, headers, answer = await second.answer()
        assert status == 503 and headers["retry-after"] == "5", answer
        assert headers.get("connection") == "close" and await second.closed_by_server()
        producer.hold.set()
        assert (await first.answer())[0] == 200
        await _wait_for(lambda: _budget(server).held == 0, "the budget is released")
        third = await RawClient.connect(settings.ingest_port)
        await third.send(post("/events", body, auth))
        assert (await third.answer())[0] == 200
        for client in (first, third):
            client.close()
        assert metric(server, "sluice_ingest_requests_total", form="json", status="503") == 1
    assert len(producer.sent) == 2 * body.count(b"\n")


async def test_unverified_bodies_get_only_their_part_of_the_budget() -> None:
    settings = guard_settings(ingest_unverified_body_bytes=4096, ingest_body_budget_bytes=8192)
    async with serving(settings) as server:
        # An unverified (signed) body that arrives slowly holds its part of the budget.
        slow = await RawClient.connect(settings.ingest_port)
        await slow.send(post("/segment", b"x" * 4000, {"X-Signature": "0" * 40})[:-1000])
        await _wait_for(lambda: _budget(server).held_unverified >= 2000, "the slow body is held")
        signed = await RawClient.connect(settings.ingest_port)
        await signed.send(post("/segment", b"y" * 3000, {"X-Signature": "1" * 40}))
        assert (await signed.answer())[0] == 503
        # A body whose credentials are checked before it is read still fits the budget.
        bearer = await RawClient.connect(settings.ingest_port)
        await bearer.send(post("/events", _ndjson(3000), {"Authorization": f"Bearer {TOKEN}"}))
        assert (await bearer.answer())[0] == 200
        await slow.send(b"x" * 1000)
        assert (await slow.answer())[0] == 403  # the signature was wrong all along
        for client in (slow, signed, bearer):
            client.close()
        await _wait_for(lambda: _budget(server).held == 0, "the budget is released")


async def test_a_body_slower_than_the_minimum_pace_gets_408_and_its_connection_closed() -> None:
    settings = guard_settings(ingest_body_timeout=0.2, ingest_body_min_rate=1000)
    async with serving(settings) as server:
        client = await RawClient.connect(settings.ingest_port)
        request = post("/events", _ndjson(3000), {"Authorization": f"Bearer {TOKEN}"})
        await client.send(request[:-2500])  # then nothing more
        status, headers, body = await client.answer()
        assert status == 408 and "SLUICE_INGEST_BODY_MIN_RATE" in orjson.loads(body)["error"]
        assert headers.get("connection") == "close" and await client.closed_by_server()
        client.close()
        await _wait_for(lambda: _budget(server).held == 0, "the budget is released")


async def test_credentials_in_a_header_are_checked_before_any_of_the_body_is_read() -> None:
    settings = guard_settings(ingest_body_timeout=30)
    async with serving(settings) as server:
        for headers in ({"Authorization": "Basic " + base64.b64encode(b"seg:wrong").decode()},
                        {"Authorization": "Bearer wrong"}, {}):
            client = await RawClient.connect(settings.ingest_port)
            path = "/events" if "Bearer" in headers.get("Authorization", "") else "/segment"
            await client.send(post(path, b"x" * 4000, headers)[:-3900])  # most of it never comes
            status, _, _ = await client.answer()  # at once, not after the body's deadline
            assert status in (401, 403)
            assert _budget(server).held == 0
            client.close()
