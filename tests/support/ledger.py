"""The books of an end-to-end run: what was produced, and which event ids each sink holds."""

from __future__ import annotations

import asyncio
import gzip
import time
import uuid
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from tests.support.es_reads import event_ids
from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.group_offsets import group_progress
from worker.sinks.s3.sink import make_client_context


async def steady_traffic(settings: Settings, produced: dict[str, int], stop: asyncio.Event,
                         per_second: float = 150.0, unacknowledged: set[str] | None = None,
                         flowing: asyncio.Event | None = None,
                         positions: dict[str, tuple[int, int]] | None = None) -> None:
    """Produce one Segment event at a time until `stop`; record id -> partition once acked
    (and id -> (partition, offset) in `positions`, when given).

    A send that fails raises, unless `unacknowledged` is given (a broker outage is expected):
    then its id goes there (the broker may or may not have it) and production goes on. While
    `flowing` is given and clear, production waits.
    """
    producer = AIOKafkaProducer(**client_options(settings),
                                metadata_max_age_ms=1000, linger_ms=5, acks="all")
    await producer.start()
    started, sent = time.monotonic(), 0
    try:
        while not stop.is_set():
            if flowing is not None and not flowing.is_set():
                await asyncio.sleep(0.05)
                started, sent = time.monotonic(), 0  # no burst to make up for the pause
                continue
            event_id = uuid.uuid4().hex
            event = {"type": "track", "event": "Tick", "userId": f"u{event_id[:4]}",
                     "messageId": event_id}
            try:
                metadata = await producer.send_and_wait(
                    settings.source_topic, orjson.dumps(event), key=event_id.encode())
            except KafkaError:
                if unacknowledged is None:
                    raise
                unacknowledged.add(event_id)
                await asyncio.sleep(0.2)
                continue
            produced[event_id] = metadata.partition
            if positions is not None:
                positions[event_id] = (metadata.partition, metadata.offset)
            sent += 1
            ahead = sent / per_second - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    finally:
        await producer.stop()


async def committed_total(settings: Settings) -> int:
    """The group's committed offsets on the source topic, summed over its partitions."""
    return sum(p.committed or 0 for p in await group_progress(settings, settings.source_topic))


async def topic_values(settings: Settings, topic: str | None = None,
                       isolation_level: str = "read_committed") -> list[bytes]:
    """Every record value of the topic (the source topic by default), as a reader with
    `isolation_level` sees them: `read_committed` (as the worker) leaves out aborted
    transactions. Counting offsets would count transaction markers as records."""
    topic = topic or settings.source_topic
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False,
                                isolation_level=isolation_level)
    await consumer.start()
    try:
        partitions = sorted(await consumer._client._wait_on_metadata(topic))
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        values: list[bytes] = []
        async with asyncio.timeout(60):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(record.value for record in batch)
        return values
    finally:
        await consumer.stop()


async def elasticsearch_ids(settings: Settings) -> Counter[str]:
    """How many documents each event id has across the settings' indices; a read that misses a
    shard fails instead of reporting its events lost (tests/support/es_reads.py)."""
    return await event_ids(settings)


async def s3_ids(settings: Settings) -> Counter[str]:
    """How many times each event id was written to the settings' bucket (all part objects)."""
    ids: Counter[str] = Counter()
    async with make_client_context(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=settings.s3_bucket,
                                             Prefix=settings.s3_prefix + "year="):
            for item in page.get("Contents", []):
                response = await client.get_object(Bucket=settings.s3_bucket, Key=item["Key"])
                async with response["Body"] as body:
                    lines = gzip.decompress(await body.read()).splitlines()
                ids.update(orjson.loads(line)["event_id"] for line in lines)
    return ids


async def assert_committed_records_are_written(settings: Settings,
                                               positions: dict[str, tuple[int, int]]) -> int:
    """Every record below its partition's committed offset is in every sink of the settings
    (read from the servers themselves); return how many records that is.

    What committing means: a committed offset may pass only records that every sink has written
    (or dead-lettered, which these tests do not expect). Read the commits first: the sinks only
    grow meanwhile, so a record committed and not found in a sink is a commit that came too early.
    """
    committed = {p.partition: p.committed or 0
                 for p in await group_progress(settings, settings.source_topic)}
    below = {event_id for event_id, (partition, offset) in positions.items()
             if offset < committed.get(partition, 0)}
    held: dict[str, set[str]] = {}
    if "elasticsearch" in settings.sinks:
        held["Elasticsearch"] = set(await elasticsearch_ids(settings))
    if "s3" in settings.sinks:
        held["S3"] = set(await s3_ids(settings))
    for sink, ids in held.items():
        missing = below - ids
        assert not missing, (
            f"offsets {committed} committed past {len(missing)} records not in {sink} "
            f"(e.g. {sorted(missing)[:3]})")
    return len(below)


def assert_exactly_once(produced: set[str], delivered: Counter[str], where: str,
                        maybe_produced: frozenset[str] | set[str] = frozenset()) -> None:
    """Every produced id delivered once, nothing else; the message counts what went wrong.

    `maybe_produced` are ids whose send failed: each may be delivered once, or not at all.
    """
    lost = produced - set(delivered)
    duplicated = {event_id: n for event_id, n in delivered.items() if n > 1}
    unexpected = set(delivered) - produced - set(maybe_produced)
    assert not (lost or duplicated or unexpected), (
        f"{where}: {len(lost)} lost (e.g. {sorted(lost)[:3]}), {len(duplicated)} written more "
        f"than once (e.g. {list(duplicated.items())[:3]}), {len(unexpected)} unexpected"
    )
