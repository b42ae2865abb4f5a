"""Settlement: source records are acknowledged only when every piece of their work has an outcome.

Each batch of consumed records of one partition (a contiguous range of offsets; a single record
is a batch of one) gets a ticket listing its **shares**: one per (event, sink) pair and one per
dead letter it must write, each named by a ``ShareKey`` (the event's ordinal in the batch, and
the sink or stage). Sinks and the dead-letter publisher settle shares as they finish, in
any order. Settling is idempotent: a second outcome for the same share is ignored and counted
(``duplicate_settlements``), so a bug that reports twice shows up in the metrics instead of
releasing a record before its other sinks have it.

A ticket keeps its pending shares as one bitmap (an int, bit *n* for ordinal *n*) per sink or
stage, not as a set of (ordinal, sink) tuples: opening a batch of 500 events for two sinks
costs two ints instead of 1,000 tuples and a set, and a sink settles every event of a ticket
it delivered with one mask (``settle_many``).

Tickets are released **strictly in consumption order per partition**, and a partition's
committable offset (``committable``) is the end of the last released ticket: the offset the
consumer commits never passes a record that still has an unsettled share, whatever order the
sinks finish in.

Ownership: the tracker knows which partitions are assigned (``assign``), and every assignment
is a new *generation*. ``forget`` (on revocation, or to recover a stuck partition) ends the
generation: its tickets are cancelled, their later outcomes are ignored (``late_settlements``),
and work started under it is not opened again. A record of a partition that is not assigned
gets no ticket at all: its partition's owner consumes it.

The tracker also bounds the records in flight: ``reserve()`` waits while the bound is reached,
so a slow sink slows consumption instead of growing memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from worker.events.records import KafkaPosition

PartitionKey = tuple[str, int]
# (the event's ordinal within its record, the sink's name or the dead-letter stage)
ShareKey = tuple[int, str]
# The pending ordinals of each sink or stage, as bitmaps (bit n: ordinal n).
ShareMasks = dict[str, int]


def share_masks(shares: Iterable[ShareKey]) -> ShareMasks:
    """The bitmaps of a collection of shares."""
    masks: ShareMasks = {}
    for ordinal, name in shares:
        masks[name] = masks.get(name, 0) | (1 << ordinal)
    return masks


def ordinals_mask(ordinals: Iterable[int]) -> int:
    """One bitmap of these ordinals."""
    mask = 0
    for ordinal in ordinals:
        mask |= 1 << ordinal
    return mask


class RecordTicket:
    """The outstanding work of a contiguous range of source records of one partition."""

    __slots__ = ("position", "end_offset", "records", "masks", "cancelled", "opened_at",
                 "_ack", "_tracker")

    def __init__(self, position: KafkaPosition, end_offset: int, records: int,
                 shares: ShareMasks, ack: Callable[[], object] | None,
                 tracker: AckTracker) -> None:
        self.position = position        # of the first record
        self.end_offset = end_offset    # one past the last record
        self.records = records
        # name -> bitmap of the ordinals still waiting for that sink's (or stage's) outcome
        self.masks: ShareMasks = {name: mask for name, mask in shares.items() if mask}
        self.cancelled = False
        self.opened_at = time.monotonic()
        self._ack = ack
        self._tracker = tracker

    @property
    def done(self) -> bool:
        return not self.masks

    @property
    def pending(self) -> set[ShareKey]:
        """The shares still waiting, as (ordinal, name) pairs (for inspection, not the hot
        path)."""
        return {(ordinal, name) for name, mask in self.masks.items()
                for ordinal in range(mask.bit_length()) if mask >> ordinal & 1}

    def is_pending(self, share: ShareKey) -> bool:
        """True while `share` still waits for its outcome (and the ticket is live)."""
        ordinal, name = share
        return not self.cancelled and bool(self.masks.get(name, 0) >> ordinal & 1)

    def settle(self, share: ShareKey) -> None:
        """Record the outcome of one share; a repeated or unknown share changes nothing."""
        ordinal, name = share
        self.settle_many(name, 1 << ordinal)

    def settle_many(self, name: str, mask: int) -> None:
        """Record the outcome of `name`'s shares of every ordinal in `mask` (a bitmap); the
        ones already settled, or never part of the ticket, are counted as duplicates."""
        if self.cancelled:
            self._tracker.late_settlements += mask.bit_count()
            return
        pending = self.masks.get(name, 0)
        settled = pending & mask
        if settled != mask:
            self._tracker.duplicate_settlements += (mask & ~pending).bit_count()
            if not settled:
                return
        left = pending ^ settled
        if left:
            self.masks[name] = left
            return
        del self.masks[name]
        if not self.masks:
            self._tracker._release((self.position.topic, self.position.partition))


@dataclass
class _Partition:
    """One assigned partition: its generation, its tickets in order, and what was submitted."""

    generation: int
    queue: deque[RecordTicket] = field(default_factory=deque)
    # Offset of the last record opened in this generation: a record delivered twice within
    # one generation (a fetch that raced a seek) is not opened twice.
    last_offset: int = -1
    # One past the last record of the last released ticket: what may be committed.
    settled_end: int | None = None


class AckTracker:
    """Per-partition queues of tickets, released to Faust in order; a bound on records in flight."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._partitions: dict[PartitionKey, _Partition] = {}
        self._next_generation = 1
        self._in_flight = 0
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._became_idle = asyncio.Event()
        self._became_idle.set()
        # Set when the last record in flight was acknowledged: everything consumed is settled,
        # so a commit now loses nothing by being early (see BatchConsumer's commit loop).
        self.all_settled = asyncio.Event()
        self.acked = 0
        self.duplicate_settlements = 0
        self.late_settlements = 0

    @property
    def in_flight(self) -> int:
        """Records consumed whose acknowledgement is still pending."""
        return self._in_flight

    # --- ownership ------------------------------------------------------------------------

    def assign(self, partitions: Iterable[PartitionKey]) -> None:
        """These partitions are ours (again): each starts a new generation."""
        for key in partitions:
            if key not in self._partitions:
                self._partitions[key] = _Partition(self._next_generation)
                self._next_generation += 1

    def is_assigned(self, partition: PartitionKey) -> bool:
        return partition in self._partitions

    def assigned(self) -> list[PartitionKey]:
        """The partitions this worker owns now, in order (for /metrics and the status page)."""
        return sorted(self._partitions)

    def generation(self, partition: PartitionKey) -> int | None:
        """The partition's current generation, None if it is not assigned; see `open`."""
        state = self._partitions.get(partition)
        return state.generation if state else None

    def forget(self, partitions: Iterable[PartitionKey]) -> int:
        """End the partitions' generation: pending tickets are cancelled and never acked (the
        records are consumed again by the partition's next owner). Returns how many."""
        dropped = 0
        for key in partitions:
            state = self._partitions.pop(key, None)
            if state is None:
                continue
            for ticket in state.queue:
                ticket.cancelled = True
                dropped += ticket.records
        self._after_release(dropped, acked=False)
        return dropped

    # --- tickets --------------------------------------------------------------------------

    async def reserve(self) -> None:
        """Wait until more records may be in flight (a batch may overshoot the bound once)."""
        while self._in_flight >= self.max_in_flight:
            self._has_room.clear()
            await self._has_room.wait()

    def last_opened(self, partition: PartitionKey) -> int:
        """Offset of the last record opened in the partition's generation (-1: none)."""
        state = self._partitions.get(partition)
        return state.last_offset if state else -1

    def committable(self, partition: PartitionKey) -> int | None:
        """The offset to commit for the partition: one past the last record whose work, and
        all work before it, has an outcome. None until something settled in this generation."""
        state = self._partitions.get(partition)
        return state.settled_end if state else None

    def open(self, position: KafkaPosition, shares: Collection[ShareKey] | Mapping[str, int],
             ack: Callable[[], object] | None, generation: int | None, *,
             end_offset: int | None = None, records: int = 1) -> RecordTicket | None:
        """A ticket for records from `position` up to `end_offset` (default: that record
        alone), or None if they must not be processed here: their partition is not assigned,
        was revoked since `generation`, or they were already opened. `shares` are (ordinal,
        name) pairs, or already bitmaps by name (see `share_masks`)."""
        key = (position.topic, position.partition)
        state = self._partitions.get(key)
        if state is None or state.generation != generation or position.offset <= state.last_offset:
            return None
        end = position.offset + 1 if end_offset is None else end_offset
        state.last_offset = end - 1
        masks = dict(shares) if isinstance(shares, Mapping) else share_masks(shares)
        ticket = RecordTicket(position, end, records, masks, ack, self)
        state.queue.append(ticket)
        self._in_flight += records
        self._became_idle.clear()
        if ticket.done:
            self._release(key)
        return ticket

    def _release(self, key: PartitionKey) -> None:
        state = self._partitions.get(key)
        if state is None:
            return
        queue = state.queue
        released = 0
        while queue and queue[0].done:
            ticket = queue.popleft()
            state.settled_end = ticket.end_offset
            released += ticket.records
            if ticket._ack is not None:
                ticket._ack()
        if released:
            self._after_release(released)

    def _after_release(self, count: int, acked: bool = True) -> None:
        self._in_flight -= count
        if acked:
            self.acked += count
        if self._in_flight < self.max_in_flight:
            self._has_room.set()
        if self._in_flight == 0:
            self._became_idle.set()
            if acked and count:
                self.all_settled.set()

    async def wait_idle(self) -> None:
        """Return once no record is in flight."""
        if self._in_flight:
            await self._became_idle.wait()

    # --- what is stuck ----------------------------------------------------------------------

    def pending_by_partition(self) -> dict[PartitionKey, int]:
        """Records in flight per partition (for logs and progress)."""
        return {key: sum(ticket.records for ticket in state.queue)
                for key, state in self._partitions.items() if state.queue}

    def oldest_offset(self, partition: PartitionKey) -> int | None:
        """Offset of the partition's oldest unacknowledged record (None: nothing pending)."""
        state = self._partitions.get(partition)
        if state is None or not state.queue:
            return None
        return state.queue[0].position.offset

    def oldest_unsettled(self, now: float | None = None) -> dict[PartitionKey, float]:
        """Seconds the oldest unacknowledged record of each assigned partition has waited."""
        now = time.monotonic() if now is None else now
        return {key: now - state.queue[0].opened_at
                for key, state in self._partitions.items() if state.queue}
