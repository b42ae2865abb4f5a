"""Plain records that move through the pipeline: what came in, what goes out, what failed.

Behaviour lives in the services (decoding, enrichment, sinks, dead letters); these are data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Header names of dead letters, in one place so tools (``sluice dlq``) and tests agree.
DLQ_HEADER_PREFIX = "sluice."


@dataclass(frozen=True, slots=True)
class KafkaPosition:
    """Where a record sits in Kafka."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A record of the source topic, exactly as consumed (bytes untouched)."""

    key: bytes | None
    value: bytes | None
    position: KafkaPosition
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class Settlement(Protocol):
    """The acknowledgement ticket of a record: each (event, sink) outcome settles one share."""

    def settle(self, shares: int = 1) -> None: ...


@dataclass(slots=True, eq=False)
class Event:
    """One normalised, enriched event document on its way to the sinks.

    ``document`` is the JSON document every sink writes (see ``worker.normalize``); ``record``
    and ``batch_index`` say where it came from, so a failure can be dead-lettered with the
    original bytes.
    """

    event_id: str
    document: dict[str, Any]
    record: SourceRecord
    batch_index: int | None = None
    ticket: Settlement | None = field(default=None, repr=False)
    # The document as JSON, encoded once by the pipeline for every sink that writes it as is.
    encoded: bytes = b""

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
