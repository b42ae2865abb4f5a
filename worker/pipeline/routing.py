"""Which sinks a record's events go to: every sink, except for a dead letter's replay.

`sluice dlq replay` marks a replayed record with the sink (or sinks) that failed it, in the
``sluice.replay.sinks`` header (comma-separated sink names). Its events then go to those sinks
only: the others already hold them, and writing them there again would duplicate them (S3 keys
the records it has by offset, and a replay has a new offset). A named sink this worker does not
run cannot take them now: each such event is dead-lettered again for that sink (retriable), so
that a replay on a worker that has it delivers it.

Dead letters belong to the consumer group that wrote them (``sluice.worker.group``): two groups
reading one source topic each dead-letter a record both fail. A replay marks each record with
its letter's group (``sluice.replay.group``), and a worker of another group skips it
(``replayed_for_another_group``): that group has its own dead letter of the record to replay,
and taking this one too would process the record twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from worker.events.errors import SinkUnavailable
from worker.events.records import (
    REPLAY_GROUP_HEADER,
    REPLAY_SINKS_HEADER,
    Event,
    SourceRecord,
)
from worker.sinks.base import Sink


@dataclass(frozen=True)
class Route:
    """The sinks a record's events are written to, and the sinks it names that are absent."""

    sinks: Sequence[Sink]
    absent: Sequence[str] = field(default=())

    def absent_failures(self, events: Sequence[Event]) -> list[tuple[int | None,
                                                                     SinkUnavailable]]:
        """One failure per event and absent sink: each is dead-lettered for that sink."""
        return [
            (event.batch_index, SinkUnavailable(
                f"replayed for sink {name}, which this worker does not run (SLUICE_SINKS): "
                f"replay it again on a worker with {name}", sink=name))
            for event in events for name in self.absent
        ]


def replay_sinks(record: SourceRecord) -> list[str] | None:
    """The sink names a replayed record is meant for; None for an ordinary record."""
    for name, value in record.headers:
        if name == REPLAY_SINKS_HEADER:
            return [part.strip() for part in value.decode(errors="replace").split(",")
                    if part.strip()]
    return None


def replayed_for_another_group(record: SourceRecord, group: str) -> bool:
    """True for a record `sluice dlq replay` sent back for another consumer group than
    `group` (this worker's SLUICE_APP_ID): this worker leaves it alone."""
    for name, value in record.headers:
        if name == REPLAY_GROUP_HEADER:
            return value.decode(errors="replace") != group
    return False


def route(record: SourceRecord, sinks: Sequence[Sink]) -> Route:
    """Every sink for an ordinary record; only the named ones for a replayed one."""
    wanted = replay_sinks(record)
    if wanted is None:
        return Route(sinks)
    present = {sink.name for sink in sinks}
    return Route([sink for sink in sinks if sink.name in wanted],
                 [name for name in dict.fromkeys(wanted) if name not in present])
