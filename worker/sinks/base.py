"""The contract every sink obeys.

A sink takes events (``write``), makes them durable in its own way and time (batches, parts),
and reports each event's outcome to the pipeline through ``SinkOutcomes``: ``delivered`` once
the event is durably written, ``failed`` (with a named error) when it never will be. A sink never
drops an event silently and never sleeps the pipeline on its own: when its buffers are full,
``write`` simply takes longer to return, which is the backpressure.

Ownership: ``assign`` tells a sink which partitions are now this worker's (before any of their
events arrive); ``forget`` drops buffered and in-flight events of partitions it no longer owns:
they get no outcome, because their records are consumed again by the partition's next owner.
A sink ignores events whose ticket is cancelled (``Event.cancelled``) and never re-claims a
partition on its own. If a sink loses events of a partition it still owns (it cannot give them
an outcome any more), it says so with ``SinkOutcomes.lost``, and the pipeline consumes that
partition again.

``flush`` returns when every event written before it has an outcome. Cancelling a ``flush``
(a drain that timed out) cancels only the wait: work under way goes on and still reports.

What each sink promises (batching knobs, retries, ordering) is stated in its module docstring.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from worker.events.errors import SinkError
from worker.events.records import Event

PartitionKey = tuple[str, int]

# What `Sink.check` answers before `start` (no client yet) and after `stop`: never an error.
NOT_STARTED = "not started"


@dataclass(frozen=True, slots=True)
class SinkFailure:
    """An event a sink gave up on, why, and after how many attempts."""

    event: Event
    error: SinkError
    attempts: int = 1


class SinkOutcomes(Protocol):
    """Where a sink reports outcomes: implemented by the pipeline."""

    def delivered(self, sink: str, events: Sequence[Event]) -> None:
        """These events are durably written by `sink`."""

    async def failed(self, sink: str, failures: Sequence[SinkFailure]) -> None:
        """These events will never be written by `sink`; returns once they are dead-lettered."""

    def lost(self, sink: str, partition: PartitionKey, reason: str) -> None:
        """`sink` lost events of `partition` (still assigned) without an outcome."""

    def contested(self, sink: str, partition: PartitionKey, reason: str) -> None:
        """`sink` lost events of `partition` (still assigned) because another worker holds the
        partition: as `lost`, and the group's assignment disagrees with who writes."""


class Sink(ABC):
    """Base of every sink. Subclasses set `name` and implement `write` and `flush`."""

    name: str

    def __init__(self, outcomes: SinkOutcomes) -> None:
        self.outcomes = outcomes

    async def start(self) -> None:
        """Connect and check the destination; raise with a clear message if it is unusable."""

    @abstractmethod
    async def write(self, events: Sequence[Event]) -> None:
        """Accept events; may wait while the sink's buffers are full (backpressure)."""

    def assign(self, partitions: Collection[PartitionKey]) -> None:
        """These partitions are this worker's now; called before any of their events arrive."""

    @abstractmethod
    async def flush(self) -> None:
        """Return once every event written so far has a reported outcome."""

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        """Drop buffered events of partitions this worker no longer owns (no outcome)."""

    async def stop(self) -> None:
        """Release connections. `flush` has been called before, if there was time."""

    async def check(self) -> str | None:
        """None if the destination answers now, else what is wrong (for the readiness probe).

        Called at any time, before `start` and after `stop` too: it answers, never raises
        (`NOT_STARTED` while the sink has no client)."""
        return None

    def notice(self) -> str | None:
        """Something an operator should act on that does not stop the sink (the S3 sink's
        parked merges), or None: ``/health/ready`` names it and stays ready."""
        return None

    def holding(self) -> dict[PartitionKey, str]:
        """The partitions whose events this sink holds back on purpose now (the destination
        pushes back, and they are retried until it accepts them), with why. The settle
        watchdog leaves those partitions alone: consuming them again would only add to the
        load."""
        return {}
