"""How far the worker group has got: end offsets, committed offsets and lag per partition."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.topics import partition_counts


@dataclass(frozen=True)
class PartitionProgress:
    """One partition of a topic as the consumer group sees it."""

    partition: int
    end_offset: int
    committed: int | None

    @property
    def lag(self) -> int:
        return self.end_offset - (self.committed or 0)


async def group_progress(settings: Settings, topic: str, group: str | None = None) -> list[
    PartitionProgress
]:
    """End offset, committed offset (None if never committed) and lag of every partition."""
    group = group or settings.app_id
    partitions = (await partition_counts(settings, [topic]))[topic]
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False
    )
    admin = AIOKafkaAdminClient(**client_options(settings))
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        return [
            PartitionProgress(
                partition=tp.partition,
                end_offset=ends[tp],
                committed=(committed[tp].offset if tp in committed and committed[tp].offset >= 0
                           else None),
            )
            for tp in tps
        ]
    finally:
        await admin.close()
        await consumer.stop()
