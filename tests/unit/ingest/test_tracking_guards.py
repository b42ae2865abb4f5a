"""The tracking API behind the server's guards: write keys rate-limited (they are public),
bodies naming their write key read within the unverified budget, failed authentications
counted, every answer counted once under `form="tracking"` with a request id and, for an
allowed origin, the CORS headers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support.ingest_server import RawClient, guard_settings, metric, post, serving
from tests.support.recording_producer import RecordingProducer
from worker.config import IngestForm, Settings, load_settings
from worker.ingest.metrics import IngestMetrics
from worker.ingest.server import IngestServer

KEY, OTHER_KEY = "wk-web", "wk-backend"
ORIGIN = "https://shop.example.com"
EVENT = orjson.dumps({"type": "track", "event": "Bought", "userId": "u1"})

def _settings(**overrides: object) -> Settings:
    values = {"ingest_forms": [IngestForm.TRACKING],
              "ingest_write_keys": [f"{KEY}=src-web", f"{OTHER_KEY}=src-backend"],
              "ingest_cors_origins": [ORIGIN], "ingest_trusted_proxies": ["127.0.0.1"]}
    return load_settings(**{**values, **overrides})


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
async def started(producer: RecordingProducer
                  ) -> AsyncIterator[Callable[..., object]]:
    """Start a server (and a client of it) with settings overridden; closed at the end."""
    clients: list[TestClient] = []

    async def start(**overrides: object) -> tuple[IngestServer, TestClient]:
        server = IngestServer(_settings(**overrides), producer,  # type: ignore[arg-type]
                              IngestMetrics(lambda: True))
        client = TestClient(TestServer(server.application()))
        await client.start_server()
        clients.append(client)
        return server, client

    yield start
    for client in clients:
        await client.close()


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.mark.parametrize("where", ["basic auth", "body"])
async def test_a_write_key_over_its_rate_limit_gets_429_with_retry_after_and_cors(
        started: Callable, producer: RecordingProducer, where: str) -> None:
    server, client = await started(ingest_credential_burst=2, ingest_credential_rate=0.01)

    async def send(key: str, address: str):
        if where == "basic auth":
            return await client.post("/v1/t", data=EVENT, headers={
                **_basic(key), **_from(address), "Origin": ORIGIN})
        body = orjson.dumps({**orjson.loads(EVENT), "writeKey": key})
        return await client.post("/v1/t", data=body, headers={
            "Content-Type": "text/plain", **_from(address), "Origin": ORIGIN})

    statuses = [(await send(KEY, f"198.51.100.{n}")).status for n in range(2)]
    over = await send(KEY, "198.51.100.9")  # a new address: the key's own bucket is empty
    answer = await over.json()
    assert statuses == [200, 200] and over.status == 429 and answer["code"] == "rate_limited"
    assert int(over.headers["Retry-After"]) >= 1
    assert over.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert (await send(OTHER_KEY, "198.51.100.9")).status == 200  # another key is not held back
    assert len(producer.sent) == 3
    assert metric(server, "sluice_ingest_requests_total", form="tracking", status="429") == 1


async def test_a_client_address_over_its_rate_limit_gets_429(
        started: Callable, producer: RecordingProducer) -> None:
    _, client = await started(ingest_client_burst=2, ingest_client_rate=0.01)
    statuses = [(await client.post("/v1/t", data=EVENT, headers={
        **_basic(KEY if n % 2 else OTHER_KEY), **_from("203.0.113.5")})).status
        for n in range(3)]
    other = await client.post("/v1/t", data=EVENT, headers={**_basic(KEY),
                                                            **_from("203.0.113.6")})
    assert statuses == [200, 200, 429] and other.status == 200 and len(producer.sent) == 3


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition was not met")


@pytest.mark.parametrize("holder_auth, unverified", [({}, True), (_basic(KEY), False)])
async def test_a_body_naming_its_write_key_is_read_within_the_unverified_budget(
        holder_auth: dict[str, str], unverified: bool) -> None:
    settings = guard_settings(ingest_forms=[IngestForm.TRACKING],
                              ingest_write_keys=[f"{KEY}=src-web"],
                              ingest_tracking_max_batch_bytes=4096,
                              ingest_tracking_max_event_bytes=4096)
    producer = RecordingProducer()
    event = {**orjson.loads(EVENT), "writeKey": KEY, "properties": {"pad": "x" * 1400}}
    async with serving(settings, producer) as server:
        budget = server.guard.budget
        # A request whose body is on its way holds 3,000 bytes of the budget meanwhile.
        holder = await RawClient.connect(settings.ingest_port)
        await holder.send(post("/v1/t", b"x" * 4000, {"Content-Type": "text/plain",
                                                      **holder_auth})[:-1000])
        await _until(lambda: budget.held >= 3000)
        assert (budget.held_unverified >= 3000) is unverified
        answers = []
        for auth in ({}, _basic(KEY)):  # the key in the body, then in the header
            client = await RawClient.connect(settings.ingest_port)
            await client.send(post("/v1/t", orjson.dumps(event), {"Content-Type": "text/plain",
                                                                   **auth}))
            answers.append(await client.answer())
            client.close()
        holder.close()
    statuses = [status for status, _, _ in answers]
    # 3,000 + 1,500 bytes pass the unverified part (4,096), not the whole budget (8,192).
    assert statuses == ([503, 200] if unverified else [200, 200]), answers
    if unverified:
        assert "retry-after" in answers[0][1]
        assert "body budget" in orjson.loads(answers[0][2])["message"]
    assert len(producer.sent) == statuses.count(200)


async def test_wrong_write_keys_count_as_failed_authentications(
        started: Callable, producer: RecordingProducer) -> None:
    server, client = await started(ingest_auth_failure_burst=2, ingest_auth_failure_rate=0.01)
    guesser = {**_from("192.0.2.77"), "Origin": ORIGIN}
    wrong = [await client.post("/v1/t", data=EVENT, headers={**_basic(f"guess-{n}"), **guesser})
             for n in range(2)]
    held = await client.post("/v1/t", data=EVENT, headers={**_basic(KEY), **guesser})
    assert [r.status for r in wrong] == [403, 403] and held.status == 429
    # The guard's own 429 is in Segment's error shape and readable by the page.
    assert (await held.json())["code"] == "rate_limited"
    assert held.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert producer.sent == []
    assert metric(server, "sluice_ingest_requests_total", form="tracking", status="403") == 2


async def test_every_tracking_answer_is_counted_once_with_a_request_id(
        started: Callable, producer: RecordingProducer) -> None:
    server, client = await started()
    batch = orjson.dumps({"batch": [orjson.loads(EVENT)] * 3})
    answers = [await client.post("/v1/batch", data=batch, headers=_basic(KEY)),
               await client.post("/v1/batch", data=b"{", headers=_basic(KEY)),
               await client.post("/v1/nothing", data=b"{}", headers=_basic(KEY)),
               await client.get(f"/v1/projects/{KEY}/settings"),
               await client.options("/v1/t", headers={"Origin": ORIGIN,
                                                      "Access-Control-Request-Method": "POST"})]
    assert [r.status for r in answers] == [200, 400, 404, 200, 204]
    assert all(r.headers["X-Request-Id"] for r in answers)
    for status in ("200", "400", "404", "204"):
        expected = 2 if status == "200" else 1
        assert metric(server, "sluice_ingest_requests_total", form="tracking",
                      status=status) == expected
    assert metric(server, "sluice_ingest_events_total", form="tracking") == 3
    assert metric(server, "sluice_ingest_request_bytes_total", form="tracking") == len(
        batch) + 1
    assert metric(server, "sluice_ingest_requests_total", form="other", status="404") == 0


async def test_a_write_key_header_that_is_not_utf8_gets_400_not_500() -> None:
    settings = guard_settings(ingest_forms=[IngestForm.TRACKING],
                              ingest_write_keys=[f"{KEY}=src-web"],
                              ingest_tracking_max_batch_bytes=4096)
    producer = RecordingProducer()
    async with serving(settings, producer) as server:
        client = await RawClient.connect(settings.ingest_port)
        await client.send(post("/v1/batch", b'{"batch": []}',
                               raw_headers=b"Authorization: Basic \xff\xfe\r\n"))
        status, headers, body = await client.answer()
        client.close()
        assert status == 400 and "not UTF-8" in orjson.loads(body)["message"]
        assert headers["x-request-id"]
        assert metric(server, "sluice_ingest_requests_total", form="tracking",
                      status="400") == 1
    assert producer.sent == []
