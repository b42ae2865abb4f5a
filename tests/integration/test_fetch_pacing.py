"""On the real broker: a caught-up consumer's fetches are paced, and records still arrive.

The local stack's broker answers an empty fetch at once, whatever ``fetch_max_wait_ms`` says;
without pacing one idle aiokafka consumer sent it thousands of fetches a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.fetch_pacing import EMPTY_FETCH_PAUSE, pace_empty_fetches

pytestmark = pytest.mark.integration

IDLE_SECONDS = 1.0


async def _count_fetches(consumer: AIOKafkaConsumer) -> list[float]:
    """Record the time of every fetch request the consumer's fetcher makes."""
    fetcher = consumer._fetcher
    fetch = fetcher._proc_fetch_request
    times: list[float] = []

    async def counted(assignment: Any, node_id: int, request: Any) -> bool:
        times.append(time.monotonic())
        return await fetch(assignment, node_id, request)

    fetcher._proc_fetch_request = counted
    return times


async def test_an_idle_consumer_fetches_at_most_once_per_pause_and_still_gets_records(
    settings: Settings,
) -> None:
    topic = settings.source_topic
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(topic, **client_options(settings), group_id=settings.app_id,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=1500)
    await consumer.start()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        fetches = await _count_fetches(consumer)
        pace_empty_fetches(consumer._fetcher)
        await consumer.getmany(timeout_ms=500)  # joined, assigned, caught up
        fetches.clear()
        await asyncio.sleep(IDLE_SECONDS)
        idle_fetches = len(fetches)

        await producer.send_and_wait(topic, b"after the idle second", partition=1)
        received: list[bytes] = []
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                received.extend(record.value for record in records)
    finally:
        await producer.stop()
        await consumer.stop()
    # The slack covers a fetch in flight at each end of the idle second.
    assert idle_fetches <= IDLE_SECONDS / EMPTY_FETCH_PAUSE + 3, idle_fetches
    assert received == [b"after the idle second"]
