"""Acknowledgements: a source record is acknowledged only when all of its work is durable.

Each consumed record gets a ticket with one *share* per (event, sink) pair and one per dead
letter it must write. Sinks and the dead-letter publisher settle shares as they finish, in any
order. Tickets are released to Faust **strictly in consumption order per partition**, so the
offset Faust commits never passes a record that still has an unsettled share.

Why in order: Faust commits "the end of the first consecutive run of acked offsets", and under
out-of-order acks that logic can commit past a message still in flight (faust-streaming #606).
Releasing acks in order makes the acked offsets one consecutive run from the committed offset,
which is the case Faust gets right.

The tracker also bounds the records in flight: ``reserve()`` waits while the bound is reached,
so a slow sink slows consumption instead of growing memory.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from worker.records import KafkaPosition

PartitionKey = tuple[str, int]


class RecordTicket:
    """The outstanding work of one source record."""

    __slots__ = ("position", "remaining", "cancelled", "_ack", "_tracker")

    def __init__(
        self, position: KafkaPosition, shares: int, ack: Callable[[], object], tracker: AckTracker
    ) -> None:
        self.position = position
        self.remaining = shares
        self.cancelled = False
        self._ack = ack
        self._tracker = tracker

    @property
    def done(self) -> bool:
        return self.remaining <= 0

    def settle(self, shares: int = 1) -> None:
        """Mark `shares` pieces of this record's work durable (or dead-lettered)."""
        if self.cancelled:
            return
        self.remaining -= shares
        if self.remaining <= 0:
            self._tracker._release((self.position.topic, self.position.partition))


class AckTracker:
    """Per-partition queues of tickets, released to Faust in order; a bound on records in flight."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._queues: dict[PartitionKey, deque[RecordTicket]] = defaultdict(deque)
        self._generations: dict[PartitionKey, int] = defaultdict(int)
        self._in_flight = 0
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._became_idle = asyncio.Event()
        self.acked = 0

    @property
    def in_flight(self) -> int:
        """Records consumed whose acknowledgement is still pending."""
        return self._in_flight

    def generation(self, partition: PartitionKey) -> int:
        """Changes whenever a partition is forgotten (revoked); see `open`."""
        return self._generations[partition]

    async def reserve(self) -> None:
        """Wait until one more record may be in flight."""
        while self._in_flight >= self.max_in_flight:
            self._has_room.clear()
            await self._has_room.wait()

    def open(
        self, position: KafkaPosition, shares: int, ack: Callable[[], object], generation: int
    ) -> RecordTicket | None:
        """A ticket for a record, or None if its partition was revoked since `generation`."""
        key = (position.topic, position.partition)
        if self._generations[key] != generation:
            return None
        ticket = RecordTicket(position, shares, ack, self)
        self._queues[key].append(ticket)
        self._in_flight += 1
        self._became_idle.clear()
        if ticket.done:
            self._release(key)
        return ticket

    def _release(self, key: PartitionKey) -> None:
        queue = self._queues[key]
        released = 0
        while queue and queue[0].done:
            queue.popleft()._ack()
            released += 1
        if released:
            self._after_release(released)

    def forget(self, partitions: Iterable[PartitionKey]) -> int:
        """Drop the pending tickets of revoked partitions: they will never be acked (their
        records are consumed again by the partition's next owner). Returns how many."""
        dropped = 0
        for key in partitions:
            self._generations[key] += 1
            queue = self._queues.pop(key, deque())
            for ticket in queue:
                ticket.cancelled = True
            dropped += len(queue)
        self._after_release(dropped, acked=False)
        return dropped

    def _after_release(self, count: int, acked: bool = True) -> None:
        self._in_flight -= count
        if acked:
            self.acked += count
        if self._in_flight < self.max_in_flight:
            self._has_room.set()
        if self._in_flight == 0:
            self._became_idle.set()

    async def wait_idle(self) -> None:
        """Return once no record is in flight."""
        if self._in_flight:
            await self._became_idle.wait()

    def pending_by_partition(self) -> dict[PartitionKey, int]:
        """Records in flight per partition (for logs and progress)."""
        return {key: len(queue) for key, queue in self._queues.items() if queue}
