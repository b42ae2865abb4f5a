"""A fetched batch on its way to the pipeline: the plain records of one partition's fetch, and
the routes the batch consumer (``worker.kafka.faust_batches``) hands it along.

Nothing here knows Faust's consumer: the records are Sluice's own (``SourceRecord``), read
straight from aiokafka's ``ConsumerRecord``s without building a Faust ``Message``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from faust.types import TP

from worker.events.records import KafkaPosition, SourceRecord

BatchHandler = Callable[[TP, list[SourceRecord]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Consecutive records of one partition, as fetched, and the seek stamp they were read under.

    ``stamp`` lets a later step (an agent behind a channel) recognise a batch that a seek or
    rewind has made stale while it waited (``BatchConsumer.is_current``).
    """

    tp: TP
    records: list[SourceRecord]
    stamp: tuple[int, int]


class BatchRoute(Protocol):
    """Where the consumer's drain loop hands each batch."""

    async def deliver(self, batch: RecordBatch) -> None: ...


class DirectRoute:
    """Hand each batch straight to an async handler, awaited by the drain loop."""

    def __init__(self, handle: BatchHandler) -> None:
        self.handle = handle

    async def deliver(self, batch: RecordBatch) -> None:
        await self.handle(batch.tp, batch.records)


class BatchesNotAttached(RuntimeError):
    """The batch consumer started before ``attach`` told it where batches go."""


def source_records(raw: Sequence[Any]) -> list[SourceRecord]:
    """aiokafka ``ConsumerRecord``s as Sluice's plain records (bytes untouched).

    The fields Sluice keeps of a record (``worker.events.records.SourceRecord``), read straight
    from the aiokafka record: no Faust ``Message`` is built.
    """
    out = []
    append = out.append
    for record in raw:
        headers = record.headers
        append(SourceRecord(
            record.key,
            record.value,
            KafkaPosition(record.topic, record.partition, record.offset),
            # aiokafka gives milliseconds; a missing time (None or 0) is None.
            record.timestamp or None,
            tuple((str(name), bytes(value or b"")) for name, value in headers) if headers else (),
        ))
    return out
