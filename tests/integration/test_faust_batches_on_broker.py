"""The batch consumer on the real broker: a bare Faust app (no Sluice pipeline) with a trivial
handler reads a 4-partition topic exactly once, the group commits what ``committable`` says, and
``rewind`` delivers a partition again from the given offset."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from worker.app import broker_urls
from worker.config import Settings
from worker.events.records import SourceRecord
from worker.kafka.connection import client_options, faust_credentials
from worker.kafka.faust_batch_agent import AgentRoute
from worker.kafka.faust_batches import BatchConsumer
from worker.kafka.record_batches import DirectRoute

pytestmark = pytest.mark.integration

PARTITIONS = 4
RECORDS = 2000
HELD_BACK = 100  # partition 0 settles only up to here until the test releases it


class _Transport(aiokafka_driver.Transport):
    Consumer = BatchConsumer


class _BareApp(faust.App):
    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


async def _produce(settings: Settings, topic: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        sends = [await producer.send(topic, value=b"r%d" % i, partition=i % PARTITIONS)
                 for i in range(RECORDS)]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _committed(settings: Settings, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("route_kind", ["direct", "agent"])
async def test_batches_exactly_once_commits_committable_and_rewinds(
    settings: Settings, route_kind: str
) -> None:
    name, topic = settings.app_id, settings.source_topic
    await _produce(settings, topic)

    app = _BareApp(name, broker=broker_urls(settings),
                   broker_credentials=faust_credentials(settings),
                   store="memory://", web_enabled=False,
                   topic_allow_declare=False, consumer_auto_offset_reset="earliest",
                   broker_commit_interval=0.3)
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    delivered: list[tuple[int, int, bytes]] = []
    delivered_at: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    settled: dict[TP, int] = {}
    hold = {"partition0": True}

    async def handle(tp: TP, records: list[SourceRecord]) -> None:
        for record in records:
            delivered.append((record.position.partition, record.position.offset, record.value))
            delivered_at[tp.partition].append(record.position.offset)
        end = records[-1].position.offset + 1
        settled[tp] = min(end, HELD_BACK) if tp.partition == 0 and hold["partition0"] else end

    app.topics.add(source)
    route = DirectRoute(handle) if route_kind == "direct" else AgentRoute(app, handle)
    consumer: BatchConsumer = app.consumer
    consumer.attach([topic], route, settled.get, max_records_per_partition=64)
    await app.start()
    try:
        await _until(lambda: len(delivered) >= RECORDS, 60, "every record")
        await asyncio.sleep(0.5)  # anything more would be a duplicate
        positions = [(p, o) for p, o, _ in delivered]
        assert len(positions) == RECORDS == len(set(positions))
        assert {v for *_, v in delivered} == {b"r%d" % i for i in range(RECORDS)}
        per_partition = RECORDS // PARTITIONS
        for p in range(PARTITIONS):
            assert delivered_at[p] == list(range(per_partition))  # in order, from the first

        # The commit timer commits committable(tp): partition 0 is held back.
        expected = {0: HELD_BACK, 1: per_partition, 2: per_partition, 3: per_partition}
        deadline = time.monotonic() + 20
        while (committed := await _committed(settings, name)) != expected:
            assert time.monotonic() < deadline, f"committed {committed}, expected {expected}"
            await asyncio.sleep(0.3)

        # rewind: partition 2 delivers again from offset 200, nothing else moves.
        before = len(delivered)
        await consumer.rewind(TP(topic, 2), 200)
        again = per_partition - 200
        await _until(lambda: len(delivered) >= before + again, 30, "the rewound records")
        await asyncio.sleep(0.5)
        assert delivered[before:] and [(p, o) for p, o, _ in delivered[before:]] == [
            (2, o) for o in range(200, per_partition)]

        hold["partition0"] = False
        await consumer.rewind(TP(topic, 0), HELD_BACK)  # what a settlement failure would do
        await _until(lambda: settled.get(TP(topic, 0)) == per_partition, 30, "partition 0")
        expected[0] = per_partition
        deadline = time.monotonic() + 20
        while (committed := await _committed(settings, name)) != expected:
            assert time.monotonic() < deadline, f"committed {committed}, expected {expected}"
            await asyncio.sleep(0.3)
    finally:
        await app.stop()
