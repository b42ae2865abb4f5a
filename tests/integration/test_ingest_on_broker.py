"""`sluice ingest` in-process on the real broker: keys keep one user's order; an unreachable
broker gives 503 and an unready server, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.support.ingest_traffic import Ingest, access_log, ingest_settings
from tests.support.processes import free_port
from worker.config import Settings
from worker.ingest.run import serve
from worker.kafka.connection import client_options

pytestmark = pytest.mark.integration


async def _ready(settings: Settings, session: aiohttp.ClientSession, want: int) -> dict:
    url = f"http://127.0.0.1:{settings.web_port}/health/ready"
    for _ in range(200):
        try:
            async with session.get(url) as response:
                if response.status == want:
                    return await response.json()
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"/health/ready never answered {want}")


@contextlib.asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[asyncio.Event]:
    """`sluice ingest` in this process until the block ends."""
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)


async def _records(settings: Settings, count: int) -> list:
    consumer = AIOKafkaConsumer(settings.source_topic, auto_offset_reset="earliest",
                                enable_auto_commit=False,
                                **client_options(settings))
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_one_users_events_stay_in_one_partition_in_the_order_sent(
        settings: Settings) -> None:
    settings = ingest_settings(settings)
    async with _serving(settings):
        async with aiohttp.ClientSession() as session:
            await _ready(settings, session, 200)
            ingest = Ingest(settings, session)
            for request in range(6):
                events = [{"type": "track", "event": "Step", "userId": f"user-{n}",
                           "properties": {"seq": request * 10 + n}} for n in range(8)]
                assert (await ingest.ndjson(events))[0] == 200
            _, log = access_log()
            status, _, _ = await ingest.firehose([log, {"no": "key"}])
            assert status == 200
    records = await _records(settings, 6 * 8 + 2)
    partitions, sequences = defaultdict(set), defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions[record.key].add(record.partition)
        sequences[record.key].append(orjson.loads(record.value).get("properties", {}).get("seq"))
    for n in range(8):
        key = f"user-{n}".encode()
        assert len(partitions[key]) == 1
        assert sequences[key] == [request * 10 + n for request in range(6)]
    assert b"key-acme" in partitions  # an access log is keyed by its API key
    assert any(key and key.startswith(b"arn:aws:firehose") for key in partitions)
    assert len({p for ps in partitions.values() for p in ps}) > 1  # users spread out


async def test_an_unreachable_broker_gives_503_with_retry_after_and_an_unready_server(
        settings: Settings) -> None:
    settings = ingest_settings(settings.model_copy(update={
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"}))
    async with _serving(settings):
        async with aiohttp.ClientSession() as session:
            problems = (await _ready(settings, session, 503))["problems"]
            assert "broker" in problems
            status, answer, headers = await Ingest(settings, session).ndjson(
                [{"type": "track", "event": "A", "userId": "u"}])
            assert status == 503 and headers["Retry-After"] == "5"
            assert "broker is unavailable" in answer["error"]
