"""The counting sink: counts events, and optionally records them, for tests and the demo.

It batches like a real sink (by count and by age) so that acknowledgements really are
asynchronous, and it can be told to reject events (by event id or by document field) to
exercise sink-stage dead letters. With a ``record_path`` it appends one JSON line per delivered
event (``event_id``, position, delivery time) so another process can check exactly-once delivery.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import orjson

from worker.events.errors import SinkRejected
from worker.events.records import Event
from worker.sinks.base import PartitionKey, Sink, SinkFailure, SinkOutcomes

RejectRule = Callable[[Event], str | None]


class CountingSink(Sink):
    """Counts delivered events per type; holds them up to `max_batch` events or `max_age` s."""

    name = "counting"

    def __init__(
        self,
        outcomes: SinkOutcomes,
        *,
        max_batch: int = 500,
        max_age_seconds: float = 1.0,
        record_path: Path | None = None,
        reject: RejectRule | None = None,
    ) -> None:
        super().__init__(outcomes)
        self.max_batch = max_batch
        self.max_age_seconds = max_age_seconds
        self.record_path = record_path
        self.reject = reject
        self.counts: Counter[str] = Counter()
        self._buffer: list[Event] = []
        self._oldest: float | None = None
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.record_path:
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
        self._ticker = asyncio.create_task(self._flush_when_old(), name="counting-sink-age")

    async def write(self, events: Sequence[Event]) -> None:
        if not self._buffer and events:
            self._oldest = time.monotonic()
        self._buffer.extend(events)
        if len(self._buffer) >= self.max_batch:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._buffer, self._oldest = self._buffer, [], None
            batch = [event for event in batch if not event.cancelled]
            if not batch:
                return
            rejected = [(e, reason) for e in batch if self.reject and (reason := self.reject(e))]
            rejected_ids = {id(e) for e, _ in rejected}
            accepted = [e for e in batch if id(e) not in rejected_ids]
            if self.record_path and accepted:
                self._append_records(accepted)
            for event in accepted:
                self.counts[event.document.get("type", "unknown")] += 1
            self.outcomes.delivered(self.name, accepted)
            if rejected:
                await self.outcomes.failed(
                    self.name,
                    [
                        SinkFailure(event, SinkRejected(reason, sink=self.name))
                        for event, reason in rejected
                    ],
                )

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        gone = set(partitions)
        self._buffer = [
            e for e in self._buffer if (e.position.topic, e.position.partition) not in gone
        ]

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()

    def _append_records(self, events: Sequence[Event]) -> None:
        now = time.time()
        lines = b"".join(
            orjson.dumps(
                {
                    "event_id": e.event_id,
                    "partition": e.position.partition,
                    "offset": e.position.offset,
                    "batch_index": e.batch_index,
                    "type": e.document.get("type"),
                    "input_format": e.document.get("input_format"),
                    "enriched": e.document.get("enriched"),
                    "customer_id": e.document.get("customer_id"),
                    "at": now,
                }
            )
            + b"\n"
            for e in events
        )
        with self.record_path.open("ab") as file:  # type: ignore[union-attr]
            file.write(lines)

    async def _flush_when_old(self) -> None:
        while True:
            await asyncio.sleep(self.max_age_seconds / 4)
            if self._oldest is not None and time.monotonic() - self._oldest >= self.max_age_seconds:
                await self.flush()
