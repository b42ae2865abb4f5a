"""Retries do not double the archive: a window of the event ids each partition has seen.

Segment's libraries, analytics.js and Firehose retry a request whose answer they did not get
(a timeout, a 503 after some of its records were written), with the same ``messageId`` /
``requestId``. Elasticsearch collapses such copies (``_id`` is the event id); S3 parts would
hold both. So before the sinks, an event whose **producer** id (``messageId``, ``requestId``,
a CloudWatch log event's ``id``; never an id derived from the Kafka position, which no copy
shares) was already seen on the same partition within the window is a retry: it is counted
(``duplicates``) and given to no sink, and its record is acknowledged like any other.

Why per partition in the worker, and not at the ingest door: a copy lands on the same partition
as its first (records are keyed by the user, the API key or the log stream, and a retry
carries the same event, so the same key), whichever `sluice ingest` replica took either
request; a window at the door would miss every retry that reached another replica.

The window, and its limits:

* **time**: ``SLUICE_DEDUPE_WINDOW`` seconds of the records' Kafka timestamps (a function of the
  records, not of the worker's clock: the same records give the same decisions however fast
  they are consumed); **size**: at most ``SLUICE_DEDUPE_MAX_IDS`` ids a partition, the oldest
  forgotten first. A copy that comes later than either is kept.
* it holds what *this* worker consumed of the partition since it was assigned: after a
  rebalance, a restart or a recovery (a partition consumed again from an earlier offset), it
  starts empty, so a copy whose first was consumed before that is kept (Elasticsearch still
  holds one; S3 both).
* a copy whose first was dead-lettered is still dropped: the dead letter holds the event, and
  ``sluice dlq replay`` brings it back (replayed records are never checked against the window).
* memory: ids are kept as 64-bit hashes in one set (a check is one lookup), and listed per eighth
  of the window (so a whole slice is forgotten at once); about 77 bytes an id, 74 MiB a million
  (``python -m bench.dedupe``).
  Two different ids share a hash with odds of about 1 in 10^13 for a million ids in a window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from worker.events.decoding import EventKind, RawEvent
from worker.events.records import DLQ_HEADER_PREFIX, SourceRecord

PartitionKey = tuple[str, int]
SLICES = 8
REPLAY_PREFIX = f"{DLQ_HEADER_PREFIX}replay"  # sluice.replayed_from, sluice.replay.count, …


@dataclass(slots=True)
class _Slice:
    start_ms: int
    ids: list[int] = field(default_factory=list)  # the hashes first seen in this slice


@dataclass(slots=True)
class PartitionWindow:
    last_offset: int = -1
    # Every hash of every slice, in one set: an event costs one lookup, not one per slice
    # (eight lookups in sets too large for the CPU's caches were 12% of a worker's GIL time).
    ids: set[int] = field(default_factory=set)
    slices: deque[_Slice] = field(default_factory=deque)


class DedupeWindow:
    """Per partition, the producer ids of the events seen within the window."""

    def __init__(self, window_seconds: float, max_ids: int) -> None:
        self.window_ms = int(window_seconds * 1000)
        self.slice_ms = max(1, self.window_ms // SLICES)
        self.max_ids = max_ids
        self._partitions: dict[PartitionKey, PartitionWindow] = {}
        self.duplicates = 0

    @property
    def enabled(self) -> bool:
        return self.window_ms > 0

    def ids_held(self) -> int:
        """Ids held over every partition (for the metrics)."""
        return sum(len(window.ids) for window in self._partitions.values())

    def forget(self, partitions: list[PartitionKey] | set[PartitionKey]) -> None:
        """Partitions were assigned afresh or revoked: their windows start again."""
        for key in partitions:
            self._partitions.pop(key, None)

    def begin(self, record: SourceRecord) -> PartitionWindow:
        """The window of the record's partition, moved on to the record's time. A record at or
        before the last one seen means the partition is consumed again (a recovery): its
        window starts again, so a first copy is never taken for its own retry."""
        position = record.position
        key = (position.topic, position.partition)
        window = self._partitions.get(key)
        if window is None or position.offset <= window.last_offset:
            window = self._partitions[key] = PartitionWindow()
        window.last_offset = position.offset
        now = record.timestamp_ms if record.timestamp_ms is not None else 0
        slices = window.slices
        while slices and slices[0].start_ms <= now - self.window_ms:
            window.ids.difference_update(slices.popleft().ids)
        if not slices or now >= slices[-1].start_ms + self.slice_ms:
            slices.append(_Slice(now))
        return window

    def seen(self, window: PartitionWindow, event_id: str) -> bool:
        """True if `event_id` is in the window (a retry); else it is added to it."""
        hashed = hash(event_id)
        ids = window.ids
        if hashed in ids:
            self.duplicates += 1
            return True
        ids.add(hashed)
        window.slices[-1].ids.append(hashed)
        if len(ids) > self.max_ids:
            self._shrink(window, hashed)
        return False

    def _shrink(self, window: PartitionWindow, newest: int) -> None:
        """Over SLUICE_DEDUPE_MAX_IDS: forget the oldest slices first."""
        slices = window.slices
        while len(window.ids) > self.max_ids and len(slices) > 1:
            window.ids.difference_update(slices.popleft().ids)
        if len(window.ids) > self.max_ids:  # one slice holds them all: start it again
            slices[-1].ids[:] = [newest]
            window.ids.clear()
            window.ids.add(newest)


# The field each kind of event takes its producer id from (``worker.events.normalize``).
_PRODUCER_ID_FIELDS = {EventKind.SEGMENT: "messageId", EventKind.ACCESS_LOG: "requestId",
                       EventKind.LOG: "id"}


def producer_id(raw: RawEvent, event_id: str) -> str | None:
    """`event_id` if the producer gave it (not derived from the Kafka position), else None."""
    given = raw.fields.get(_PRODUCER_ID_FIELDS[raw.kind])
    if isinstance(given, bool) or not isinstance(given, (str, int)):
        return None
    return event_id if str(given) == event_id else None


def is_replayed(record: SourceRecord) -> bool:
    """A record `sluice dlq replay` produced: never a retry, whatever its id."""
    return any(name.startswith(REPLAY_PREFIX) for name, _ in record.headers)
