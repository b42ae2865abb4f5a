"""Where S3 objects go: the key template, its presets, and part object names.

A key is ``<SLUICE_S3_PREFIX><directory><topic>+<partition>+<first offset>+<last offset>.<ext>``.
The directory comes from the key template (SLUICE_S3_KEY_TEMPLATE), rendered per event with
the hour the event belongs to (its received time, or its event time). Presets:

* ``hive`` (default): ``year={year}/month={month}/day={day}/hour={hour}/``, the layout
  Firehose writes with seed 003's prefix and that Glue/Athena and DuckDB read as partitions;
* ``segment``: ``segment-logs/{source_id}/{received_day}/``, Segment's S3 destination layout
  (seed 002); ``{received_day}`` is the day in milliseconds since the epoch, as Segment's is.

Placeholders: ``{year}``, ``{month}``, ``{day}``, ``{hour}``, ``{date}`` (YYYY-MM-DD),
``{received_day}``, ``{source_id}``, ``{event_type}``, ``{topic}``, ``{partition}``.
The file name carries the Kafka offsets, so a key says exactly which records an object holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


@dataclass(frozen=True, slots=True)
class HourSlot:
    """The UTC hour an event is filed under."""

    start: datetime

    @classmethod
    def of(cls, timestamp: str) -> HourSlot:
        """From a normalised timestamp (``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
        return _slot_for_hour(timestamp[:13])

    @property
    def end_epoch(self) -> float:
        return self.start.timestamp() + 3600


@lru_cache(maxsize=4096)
def _slot_for_hour(hour: str) -> HourSlot:
    return HourSlot(datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC))


def render_directory(
    template: str, slot: HourSlot, document: dict[str, Any], topic: str, partition: int
) -> str:
    """The directory part of an event's key."""
    return _render(template, slot.start, _safe(document.get("source_id"), "unknown"),
                   _safe(document.get("type"), "unknown"), topic, partition)


@lru_cache(maxsize=4096)
def _render(template: str, start: datetime, source_id: str, event_type: str, topic: str,
            partition: int) -> str:
    # Called for every event with a handful of distinct arguments: formatted once each.
    day_start = start.replace(hour=0)
    return template.format_map({
        "year": f"{start.year:04d}",
        "month": f"{start.month:02d}",
        "day": f"{start.day:02d}",
        "hour": f"{start.hour:02d}",
        "date": start.strftime("%Y-%m-%d"),
        "received_day": str(int(day_start.timestamp() * 1000)),
        "source_id": source_id,
        "event_type": event_type,
        "topic": topic,
        "partition": str(partition),
    })


def object_key(
    prefix: str, directory: str, topic: str, partition: int, first: int, last: int, extension: str
) -> str:
    """The full key of a part object."""
    return f"{prefix}{directory}{topic}+{partition}+{first:012d}+{last:012d}.{extension}"


def marker_key(prefix: str, topic: str, partition: int) -> str:
    """Where the sink records how far a partition is written (see ``markers``)."""
    return f"{prefix}_sluice/markers/{topic}/{partition}.json"


def staging_key(prefix: str, claim: str, final_key: str) -> str:
    """Where an owner uploads a part before publishing it under `final_key` (see
    ``worker.sinks.s3.markers``): private to one claim of a partition, outside the query
    layout, so an upload that lands late can never add data a reader sees."""
    return f"{prefix}_sluice/staging/{claim}/{final_key[len(prefix):]}"


def _safe(value: object, default: str) -> str:
    """Key-safe text: path separators and other odd characters become ``_``."""
    if not isinstance(value, str) or not value:
        return default
    return _safe_text(value)


@lru_cache(maxsize=4096)
def _safe_text(value: str) -> str:
    return _UNSAFE.sub("_", value)[:200]
