"""Which time files an event: its own time when it is plausible, else a time Sluice trusts.

An event's ``timestamp`` comes from the device that sent it, and a client may even supply its
own ``receivedAt``. ``worker.events.normalize`` accepts any time in the years 1000-9999, and the
documents keep exactly what was sent. But those times also *choose where an event is filed*:
its S3 hour directory and its Elasticsearch daily index. A device with a bad clock would then
open S3 parts for thousands of hours and create an index for every day from 1970 to 9999,
until the cluster's shard limit refuses new indices and valid traffic is dead-lettered too.

So an event time chooses the filing place only inside an accepted window around the record's
**Kafka timestamp** (the producer's or the broker's clock). Outside the window the Kafka
timestamp files the event. The event is kept, not dead-lettered: its content is valid, only its
clock is wrong, and the document still carries the time the device sent.

**Where an event is filed is a function of its record alone**, never of the worker's clock: a
record consumed again (a replay, a recovery, a re-read after a rebalance across midnight) goes
to the same S3 hour and the same daily index, so its ``_id`` never lands in two indices. So a
Kafka timestamp far ahead of the worker's clock is used as it is. Bounding producers' clocks is
the broker's job, where it can be done once for every consumer: a topic with
``message.timestamp.type=LogAppendTime`` stamps records with the broker's clock, and with
``CreateTime`` the broker refuses records stamped more than ``message.timestamp.after.max.ms``
ahead of its clock (Kafka 3.6+, KIP-937; one hour by default since Kafka 4.0). A record without
a usable Kafka timestamp (message format v0, which brokers since Kafka 4.0 no longer accept, or a
negative one) has no reference: its event time files it as it is (and without an event time
either, its processing time: such a record carries no time at all).

The worker's clock only decides *when* an S3 hour closes (``progress_ms``): there, one record
stamped far ahead must not close the current hours of its partition.

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
        self._clock = clock  # for progress_ms only: never for where an event is filed
        # The last record timestamp seen and its window: consecutive events mostly share one
        # (the events of a record, the records of a producer batch), so this is per event
        # one comparison, not a cache lookup.
        self._last_ms: int | None = None
        self._last: _Window = _Window(0, "", "", "")

    def reference_ms(self, record: SourceRecord) -> int | None:
        """The record's Kafka timestamp; None for a record without a usable one (message
        format v0, a negative timestamp, records made up by tests)."""
        window = self._window(record)
        return None if window is None else window.reference_ms

    def filing_stamp(self, stamp: str, record: SourceRecord) -> str:
        """`stamp` (a normalised timestamp) if it lies in the window around the record's Kafka
        timestamp, else the Kafka timestamp, normalised the same way: a function of the record
        alone."""
        window = self._window(record)
        if window is None or window.low <= stamp <= window.high:
            return stamp
        return window.reference

    def progress_ms(self, reference_ms: int | None) -> int | None:
        """How far a Kafka timestamp shows a partition's stream has come, for when its S3 hours
        close: the timestamp, but no further ahead of the worker's clock than the window
        allows (a record stamped in the year 9000 must not close the current hours)."""
        if reference_ms is None:
            return None
        return min(reference_ms, int(self._clock() * 1000) + self._future_ms)

    def _window(self, record: SourceRecord) -> _Window | None:
        stamp = record.timestamp_ms
        if stamp is None or stamp < 0:
            return None
        if stamp != self._last_ms:
            self._last_ms, self._last = stamp, _bounds(stamp, self._past_ms, self._future_ms)
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
