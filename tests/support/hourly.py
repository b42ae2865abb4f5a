"""What the hourly-publication tests read back from the bucket: objects, markers, merges."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer

from worker.config import Settings
from worker.kafka.connection import client_options
from worker.sinks.s3.sink import make_client_context

# Two days ago, so that the events' own times lie inside the accepted event-time window
# (SLUICE_EVENT_TIME_MAX_PAST) whenever the tests run: outside it they would be filed by their
# Kafka timestamp instead.
BASE_HOUR = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0,
                                                            microsecond=0)


def events_over_hours(count: int, hours: int = 3) -> tuple[list[bytes], Counter[str]]:
    """Segment events whose timestamps spread over `hours` hours; expected count per hour."""
    values, per_hour = [], Counter()
    span = hours * 3600 - 1
    for index in range(count):
        moment = BASE_HOUR + timedelta(seconds=(index * span) // count)
        event = {"type": "track", "event": "Viewed", "userId": f"u{index % 50}",
                 "messageId": f"m-{index}", "timestamp": moment.isoformat(),
                 "properties": {"index": index}}
        values.append(orjson.dumps(event))
        per_hour[f"{moment.hour:02d}"] += 1
    return values, per_hour


async def produce(settings: Settings, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.source_topic, value=v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_objects(settings: Settings, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` (below the bucket), with its bytes."""
    objects = {}
    async with make_client_context(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=settings.s3_bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                try:
                    response = await client.get_object(Bucket=settings.s3_bucket,
                                                       Key=item["Key"])
                except client.exceptions.NoSuchKey:
                    continue  # deleted since the listing (a merged hour part)
                async with response["Body"] as body:
                    objects[item["Key"]] = await body.read()
    return objects


async def list_keys(settings: Settings, prefix: str) -> list[str]:
    """The keys under `prefix` (below the bucket)."""
    keys = []
    async with make_client_context(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=settings.s3_bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


async def markers(settings: Settings) -> dict[str, dict]:
    """The partitions' markers, as JSON."""
    found = await read_objects(settings, settings.s3_prefix + "_sluice/markers/")
    return {key: orjson.loads(body) for key, body in found.items()}


async def wait_for_merges(settings: Settings, timeout: float = 90.0) -> None:
    """Until no hour part is left in the bucket and no marker lists one or a merge."""
    deadline = time.monotonic() + timeout
    left: object = None
    while time.monotonic() < deadline:
        parts = await list_keys(settings, settings.s3_prefix + "_sluice/hour-parts/")
        pending = {key: (m.get("hour_parts"), m.get("merge"))
                   for key, m in (await markers(settings)).items()
                   if m.get("hour_parts") or m.get("merge")}
        if not parts and not pending:
            return
        left = (sorted(parts), pending)
        await asyncio.sleep(0.5)
    raise AssertionError(f"merges not done after {timeout:.0f}s: {left}")


def partition_and_hour(key: str) -> tuple[int, str]:
    """(source partition, hour=HH) of a query-layout key of the hive layout."""
    return int(key.rsplit("/", 1)[1].split("+")[1]), key.split("/")[-2]
