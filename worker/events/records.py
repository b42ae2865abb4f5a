"""Plain records that move through the pipeline: what came in, what goes out, what failed.

Behaviour lives in the services (decoding, enrichment, sinks, dead letters); these are data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Header names of dead letters, in one place so tools (``sluice dlq``) and tests agree.
DLQ_HEADER_PREFIX = "sluice."
# On a replayed record: the id the event had when it failed, for events without a producer id
# (their id is derived from the Kafka position, which a replay changes; ``events.normalize``).
REPLAY_EVENT_ID_HEADER = f"{DLQ_HEADER_PREFIX}replay.event_id"
# On a replayed record: the sinks (comma-separated names) that failed it and get it again.
REPLAY_SINKS_HEADER = f"{DLQ_HEADER_PREFIX}replay.sinks"
# On a replayed record: the consumer group whose dead letter it was; other groups skip it.
REPLAY_GROUP_HEADER = f"{DLQ_HEADER_PREFIX}replay.group"


# The records made once per consumed record (KafkaPosition, SourceRecord, and
# worker.events.decoding.RawEvent) are not frozen: a frozen dataclass sets each field through
# object.__setattr__, which made creating them 3-4 times as dear (0.4-0.6 µs each, over 1 µs a
# record). Nothing assigns to them after creation; unsafe_hash keeps them hashable by value.
@dataclass(slots=True, unsafe_hash=True)
class KafkaPosition:
    """Where a record sits in Kafka."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True, unsafe_hash=True)
class SourceRecord:
    """A record of the source topic, exactly as consumed (bytes untouched)."""

    key: bytes | None
    value: bytes | None
    position: KafkaPosition
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class Settlement(Protocol):
    """The acknowledgement ticket of a record: each (event, sink) outcome settles one share,
    named by the event's ordinal in its record and the sink (see ``worker.pipeline.acks``)."""

    cancelled: bool

    def settle(self, share: tuple[int, str]) -> None: ...

    def settle_many(self, sink: str, mask: int) -> None:
        """Settle `sink`'s shares of every ordinal in `mask` (bit n: ordinal n) at once."""
        ...

    def is_pending(self, share: tuple[int, str]) -> bool: ...


@dataclass(slots=True, eq=False)
class Event:
    """One normalised, enriched event document on its way to the sinks.

    ``document`` is the JSON document every sink writes (see ``worker.events.normalize``);
    ``record`` and ``batch_index`` say where it came from, so a failure can be dead-lettered with
    the original bytes. ``ordinal`` numbers the record's events (0, 1, …): with a sink's name it
    names the share of the record's ticket that the sink's outcome settles.
    """

    event_id: str
    document: dict[str, Any]
    record: SourceRecord
    batch_index: int | None = None
    ticket: Settlement | None = field(default=None, repr=False)
    # The document as JSON, encoded once by the pipeline for every sink that writes it as is.
    encoded: bytes = b""
    ordinal: int = 0

    @property
    def cancelled(self) -> bool:
        """True once the event's partition was revoked: no sink needs to write it any more."""
        return self.ticket is not None and self.ticket.cancelled

    @property
    def position(self) -> KafkaPosition:
        return self.record.position


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record (or one event of a batch record) that could not be delivered, and why."""

    record: SourceRecord
    stage: str
    error_class: str
    message: str
    retriable: bool
    attempts: int = 1
    batch_index: int | None = None
    event_id: str | None = None
