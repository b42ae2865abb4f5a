"""Which time files an event: its own time when it is plausible, else a time Sluice trusts.

An event's ``timestamp`` comes from the device that sent it, and a client may even supply its
own ``receivedAt``. ``worker.events.normalize`` accepts any time in the years 1000-9999, and the
documents keep exactly what was sent. But those times also *choose where an event is filed*:
its S3 hour directory and its Elasticsearch daily index. A device with a bad clock would then
open S3 parts for thousands of hours and create an index for every day from 1970 to 9999,
until the cluster's shard limit refuses new indices and valid traffic is dead-lettered too.

So an event time chooses the filing place only inside an accepted window around the record's
**reference time**: the Kafka record's timestamp (the producer's or the broker's clock, the
same value every time the record is consumed again, so a replay files events exactly where the
first pass did), or the worker's clock when the record's timestamp is negative or further in
the future than the window allows. Outside the window the reference time files the event. The
event is kept, not dead-lettered: its content is valid, only its clock is wrong, and the
document still carries the time the device sent.

Normalised timestamps (``YYYY-MM-DDTHH:MM:SS.mmmZ``, four-digit years) sort as text, so the
check is two string comparisons against bounds formatted once per record timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from worker.events.records import SourceRecord


class EventTimeWindow:
    """The accepted window (SLUICE_EVENT_TIME_MAX_PAST / _MAX_FUTURE) and the filing rule."""

    def __init__(self, max_past: float, max_future: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._past_ms = int(max_past * 1000)
        self._future_ms = int(max_future * 1000)
        self._clock = clock
        # The last record timestamp seen and its window: consecutive events mostly share one
        # (the events of a record, the records of a producer batch), so this is per event
        # one comparison, not a clock reading and a cache lookup.
        self._last_ms: int | None = None
        self._last: _Window = _Window(0, "", "", "")

    def reference_ms(self, record: SourceRecord) -> int | None:
        """The record's Kafka timestamp, or the worker's clock for an implausible one (before
        1970, or further ahead of the clock than the window allows); None for a record
        without a timestamp (message format v0, which brokers since Kafka 4.0 no longer
        accept, and records made up by tests)."""
        window = self._window(record)
        return None if window is None else window.reference_ms

    def filing_stamp(self, stamp: str, record: SourceRecord) -> str:
        """`stamp` (a normalised timestamp) if it lies in the window around the record's
        reference time, else the reference time, normalised the same way."""
        window = self._window(record)
        if window is None or window.low <= stamp <= window.high:
            return stamp
        return window.reference

    def _window(self, record: SourceRecord) -> _Window | None:
        stamp = record.timestamp_ms
        if stamp is None:
            return None
        if stamp != self._last_ms:
            now_ms = int(self._clock() * 1000)
            reference = now_ms if stamp < 0 or stamp > now_ms + self._future_ms else stamp
            self._last_ms, self._last = stamp, _bounds(reference, self._past_ms,
                                                      self._future_ms)
        return self._last


@dataclass(frozen=True, slots=True)
class _Window:
    reference_ms: int
    low: str
    high: str
    reference: str


@lru_cache(maxsize=4096)
def _bounds(reference_ms: int, past_ms: int, future_ms: int) -> _Window:
    return _Window(reference_ms, _format_ms(reference_ms - past_ms),
                   _format_ms(reference_ms + future_ms), _format_ms(reference_ms))


def _format_ms(millis: int) -> str:
    """A normalised timestamp (as ``worker.events.normalize`` writes them), clipped to years
    1000-9999 so that it compares with them as text."""
    try:
        moment = datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return "0000" if millis < 0 else "9999-12-31T23:59:59.999Z"
    if moment.year < 1000:
        return "0000"
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
