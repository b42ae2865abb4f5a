"""When a partition's open parts are due: hours close by the stream's own progress.

A part's hour closes when the partition's **stream time** has passed the end of the hour plus
SLUICE_S3_HOUR_CLOSE_GRACE. The stream time is the newest filing time the partition has seen
(the hour its newest records went to), capped by the newest record's Kafka timestamp, so that
one event from a device whose clock runs a day ahead does not close the current hours for
everyone. A worker catching up a backlog of several hours therefore closes each hour when the
backlog's records pass it, exactly as live traffic would, instead of finding every part "due"
by the wall clock at every check (one tiny object per partition per second).

A partition that receives nothing for a while (caught up, or idle) has no stream to go by: once
no record has arrived for the grace period (at least ``IDLE_AFTER_MIN`` seconds), its stream
time follows the wall clock, so its last hour still closes about a grace after it ends.

Late events (filed by their own time, SLUICE_S3_TIME_FIELD=timestamp, for an hour already
closed) get a part of their own that is not due by its closed hour, but by its age, its size or
the partition's next upload: otherwise a trickle of late events would upload the partition's
parts at every check.

Only the closed parts are uploaded when the rest can stay open without breaking the offset
marker's promise: every record below the marker is in S3. That holds when each closed part's
records all precede every record of the parts left open, which is the case for a partition
read in order of its record times; otherwise (records of several hours interleaved) all of the
partition's parts are uploaded together, as before. Parts also go up when the oldest has waited
SLUICE_S3_PART_MAX_AGE, by the worker's monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from worker.sinks.s3.formats.gzip_lines import OpenPart

# A partition that has had no record for this long (or the grace, if longer) is idle.
IDLE_AFTER_MIN = 10.0


@dataclass
class StreamClock:
    """How far one partition's stream has progressed."""

    newest_filed: str = ""                # newest normalised filing time seen
    newest_record_ms: int | None = None   # newest Kafka timestamp seen
    last_record: float = 0.0              # monotonic time of the last record

    def advance(self, newest_filed: str, newest_record_ms: int | None) -> None:
        """Account for a batch whose newest filing time and Kafka timestamp are these."""
        self.newest_filed = max(self.newest_filed, newest_filed)
        if newest_record_ms is not None:
            self.newest_record_ms = max(self.newest_record_ms or 0, newest_record_ms)
        self.last_record = time.monotonic()

    def progress(self) -> float:
        """How far the partition's records have come, in epoch seconds (0 before any)."""
        progress = _epoch(self.newest_filed) if self.newest_filed else 0.0
        if self.newest_record_ms is not None:
            progress = min(progress, self.newest_record_ms / 1000)
        return progress

    def stream_time(self, now: float, now_monotonic: float, grace: float) -> float:
        """The partition's time in epoch seconds: its stream's progress, or the wall clock
        once it has been idle for the grace period."""
        progress = self.progress()
        if now_monotonic - self.last_record >= max(grace, IDLE_AFTER_MIN):
            return max(progress, now)
        return progress


def due_directories(parts: Mapping[str, OpenPart], stream_time: float, now_monotonic: float,
                    max_age: float, grace: float, late: Collection[str] = ()) -> list[str]:
    """The directories whose parts should be uploaded now (none, the closed ones, or all).
    Parts in `late` were opened after their hour had closed: they wait for their age."""
    if not parts:
        return []
    if any(now_monotonic - part.opened_at >= max_age for part in parts.values()):
        return list(parts)
    closed = [directory for directory, part in parts.items()
              if directory not in late and stream_time >= part.slot.end_epoch + grace]
    if not closed:
        return []
    return closed if separable(parts, closed) else list(parts)


def is_late(part: OpenPart, clock: StreamClock, grace: float) -> bool:
    """True for a part opened when the partition's records had already passed the end of its
    hour plus the grace (by their progress alone: a partition's first part is never late)."""
    progress = clock.progress()
    return progress > 0 and progress >= part.slot.end_epoch + grace


def separable(parts: Mapping[str, OpenPart], chosen: list[str]) -> bool:
    """True if the chosen parts can be uploaded alone: their records all precede those of
    the parts left open (so the marker can move to the first record still open)."""
    rest = [part for directory, part in parts.items() if directory not in chosen]
    if not rest:
        return True
    last_chosen = max(parts[directory].last_offset for directory in chosen)
    return last_chosen < first_open_offset(rest)


def first_open_offset(parts: list[OpenPart]) -> int:
    """The first record offset held by these parts."""
    return min(part.first_offset if part.first_offset is not None else part.last_offset + 1
               for part in parts)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
