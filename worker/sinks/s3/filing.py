"""Filing events into a partition's open S3 parts, and the counts that bound them.

An event goes to the open part of its directory (the key template rendered for its hour, and
its source and type if the template names them); a directory without an open part gets a new
one, unless SLUICE_S3_MAX_OPEN_PARTS parts are open across partitions, in which case filing stops
at a record boundary and the sink makes room first (``S3Sink._append_within_bound``).

The counts the sink consults on every write (open parts, buffered events, whether a partition
has a full part) are kept as running counts, updated as events are filed and parts are taken:
a write never costs more because more parts are open.

The hot path works per batch: a batch's events are grouped by part and each part takes its
items in one call; an event's directory is looked up in a small cache keyed by what the
template depends on (its hour, and its source and type only if the template names them),
instead of rendering the template for every event.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.config import S3TimeField, Settings
from worker.config.s3 import resolve_template
from worker.events.event_time import EventTimeWindow
from worker.events.records import Event
from worker.sinks.base import PartitionKey
from worker.sinks.s3.closing import StreamClock, is_late
from worker.sinks.s3.formats.base import Part, PartFormat
from worker.sinks.s3.markers import Marker
from worker.sinks.s3.naming import HourSlot, render_directory


def template_fields(template: str) -> set[str]:
    """The names of the fields a key template uses (``{source_id:.8}`` names ``source_id``)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# Directories remembered per filer: an hour's worth of sources and types, many times over.
# Cleared when full (cheaper than an LRU on the hot path; refilled within one batch).
DIRECTORY_CACHE_SIZE = 4096


@dataclass
class PartitionState:
    """What the S3 sink knows of one source partition it owns (from its assignment on)."""

    key: PartitionKey
    claim: str                    # this claim's owner name in the marker
    marker: Marker = field(default_factory=Marker)
    parts: dict[str, Part] = field(default_factory=dict)
    buffered: int = 0             # events in `parts` (kept as a count, not summed per write)
    full: bool = False            # a part in `parts` reached the size or event limit
    clock: StreamClock = field(default_factory=StreamClock)
    late: set[str] = field(default_factory=set)  # parts opened after their hour had closed
    next_offset: int = 0          # one past the last record handed to this sink
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    taken_over: asyncio.Task[None] | None = None
    detached: bool = False        # no longer ours: nothing more is written for it


class PartFiler:
    """Files events into open parts (one per directory) and keeps the counts that bound them."""

    def __init__(self, settings: Settings, part_format: PartFormat, spool_dir: Path,
                 with_header: bool = True) -> None:
        self.settings = settings
        self._format = part_format
        self._spool_dir = spool_dir
        # Hourly publication: hour parts of CSV have no header; the merged object gets one.
        self._with_header = with_header
        self._template = resolve_template(settings.s3_key_template)
        fields = template_fields(self._template)
        self._by_source = "source_id" in fields
        self._by_type = "event_type" in fields
        self._stamp_field = ("received_at" if settings.s3_time_field == S3TimeField.RECEIVED_AT
                             else "timestamp")
        self._window = EventTimeWindow(settings.event_time_max_past,
                                       settings.event_time_max_future)
        self._directories: dict[tuple[Any, ...], tuple[HourSlot, str]] = {}
        self._part_counter = 0
        # Across partitions, kept as counts: a write must not cost more with more open parts.
        self.open_parts = 0
        self.buffered_events = 0

    def append(self, state: PartitionState, events: list[Event], bounded: bool = True) -> int:
        """File events (consecutive, of `state`'s partition) into their parts, each part
        compressing whole buffers. Stops before a record that needs a new part once the
        open-part bound is reached; returns how many events were filed."""
        by_part: dict[str, tuple[list[Any], list[Event]]] = {}
        item = self._format.item
        stamp_field = self._stamp_field
        limit = self.settings.s3_max_open_parts if bounded else None
        window, newest_filed, newest_ms = self._window, "", None
        appended, previous_offset = 0, -1
        for event in events:
            document = event.document
            record = event.record
            position = record.position
            stamp = window.filing_stamp(document[stamp_field], record)
            slot, directory = self._directory(stamp, document, position.topic, position.partition)
            entry = by_part.get(directory)
            if entry is None:
                if directory not in state.parts:
                    if (limit is not None and self.open_parts >= limit
                            and position.offset != previous_offset):
                        break  # at a record boundary: the caller makes room first
                    self._open(state, directory, slot, position.topic, position.partition)
                entry = by_part[directory] = ([], [])
            entry[0].append(item(event))
            # Keep only what acknowledgement and dead-lettering need: not the document.
            entry[1].append(Event(event.event_id, {}, record, event.batch_index, event.ticket,
                                  ordinal=event.ordinal))
            if stamp > newest_filed:
                newest_filed = stamp
            reference = window.reference_ms(record)
            if reference is not None and (newest_ms is None or reference > newest_ms):
                newest_ms = reference
            appended, previous_offset = appended + 1, position.offset
        for directory, (items, stubs) in by_part.items():
            part = state.parts[directory]
            part.add_many(items, stubs)
            # Only the parts this write touched can have become full.
            state.full = state.full or self.is_full(part)
        state.buffered += appended
        self.buffered_events += appended
        if appended:
            state.clock.advance(newest_filed, window.progress_ms(newest_ms))
            # At once, not after the write: a flush may start while this write makes room.
            state.next_offset = max(state.next_offset, previous_offset + 1)
        return appended

    def _directory(self, stamp: str, document: dict[str, Any], topic: str,
                   partition: int) -> tuple[HourSlot, str]:
        """The event's hour and directory; the template is rendered once per distinct key."""
        # Normalised timestamps are "YYYY-MM-DDTHH:MM:SS.mmmZ": the first 13 characters are
        # the hour. Topic and partition are the same for every event of a write.
        key = (stamp[:13], topic, partition,
               document.get("source_id") if self._by_source else None,
               document.get("type") if self._by_type else None)
        found = self._directories.get(key)
        if found is None:
            if len(self._directories) >= DIRECTORY_CACHE_SIZE:
                self._directories.clear()
            slot = HourSlot.of(stamp)
            found = self._directories[key] = (
                slot, render_directory(self._template, slot, document, topic, partition))
        return found

    def _open(self, state: PartitionState, directory: str, slot: HourSlot, topic: str,
              partition: int) -> None:
        self.open_parts += 1
        self._part_counter += 1
        path = self._spool_dir / f"{topic}-{partition}-{self._part_counter}"
        part = state.parts[directory] = self._format.open_part(
            path, directory, slot, with_header=self._with_header)
        if is_late(part, state.clock, self.settings.s3_hour_close_grace):
            state.late.add(directory)

    def is_full(self, part: Part) -> bool:
        """True once the part reached SLUICE_S3_PART_MAX_BYTES or SLUICE_S3_PART_MAX_EVENTS."""
        return (part.compressed_bytes >= self.settings.s3_part_max_bytes
                or len(part.events) >= self.settings.s3_part_max_events)

    def take_parts(self, state: PartitionState,
                   directories: Collection[str] | None = None) -> list[Part]:
        """Remove these parts (all by default) from the open ones, keeping the counts right."""
        chosen = list(state.parts) if directories is None else list(directories)
        parts = [state.parts.pop(directory) for directory in chosen]
        state.late.difference_update(chosen)
        taken = sum(len(part.events) for part in parts)
        state.buffered -= taken
        self.buffered_events -= taken
        self.open_parts -= len(parts)
        state.full = any(self.is_full(part) for part in state.parts.values())
        return parts

    @staticmethod
    def discard(parts: list[Part]) -> None:
        """Close and remove the parts' spool files."""
        for part in parts:
            part.discard()
