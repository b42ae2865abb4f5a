"""Open parts: one spool file per (partition, directory) while an hourly part is being filled.

Lines are collected and compressed a whole buffer at a time (igzip,
``worker.sinks.s3.formats.compression``) into a local gzip file, so memory stays flat whatever the
part's size (at most one buffer of uncompressed lines per open part); the finished file is what is
uploaded. The line format is NDJSON (one normalised document per line) or CSV with a header and a
column mapping (seed 004's style).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.events import json_codec
from worker.events.records import Event
from worker.sinks.s3.formats.compression import GzipWriter
from worker.sinks.s3.naming import HourSlot

LineEncoder = Callable[[dict[str, Any]], bytes]

DEFAULT_CSV_COLUMNS = ("event_id", "type", "event", "timestamp", "received_at", "user_id",
                       "anonymous_id", "api_key_id", "customer_id", "usage_plan_name", "status")


def ndjson_line(document: dict[str, Any]) -> bytes:
    return json_codec.dumps(document) + b"\n"


class CsvColumns:
    """A column mapping: ``name=path.in.document`` items (``name`` alone means ``name=name``)."""

    def __init__(self, spec: list[str]) -> None:
        self.columns: list[tuple[str, list[str]]] = []
        for item in spec or DEFAULT_CSV_COLUMNS:
            name, _, path = item.partition("=")
            self.columns.append((name.strip(), (path or name).strip().split(".")))

    def header(self) -> bytes:
        return self._row([name for name, _ in self.columns])

    def line(self, document: dict[str, Any]) -> bytes:
        return self._row([_cell(_dig(document, path)) for _, path in self.columns])

    @staticmethod
    def _row(values: list[str]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        return buffer.getvalue().encode()


def _dig(document: Any, path: list[str]) -> Any:
    for step in path:
        if not isinstance(document, dict):
            return None
        document = document.get(step)
    return document


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json_codec.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Uncompressed bytes collected before they are compressed in one call.
BUFFER_BYTES = 256 * 1024


class PartHolding:
    """What every part keeps whatever its format: its spool file, directory and hour, the
    events it holds (their bookkeeping, for acknowledgement) and the range of their offsets."""

    def __init__(self, path: Path, directory: str, slot: HourSlot) -> None:
        self.path = path
        self.directory = directory
        self.slot = slot
        self.opened_at = time.monotonic()
        self.first_offset: int | None = None
        self.last_offset = -1
        self.events: list[Event] = []

    def _hold(self, events: list[Event]) -> None:
        """Keep these events and widen the offset range to theirs (one pass per batch)."""
        if not events:
            return
        offsets = [event.record.position.offset for event in events]
        low, high = min(offsets), max(offsets)
        if self.first_offset is None or low < self.first_offset:
            self.first_offset = low
        if high > self.last_offset:
            self.last_offset = high
        self.events.extend(events)


class OpenPart(PartHolding):
    """A gzip NDJSON or CSV part being filled (the ``worker.sinks.s3.formats.base.Part``
    interface)."""

    def __init__(self, path: Path, directory: str, slot: HourSlot, level: int,
                 header: bytes = b"") -> None:
        super().__init__(path, directory, slot)
        self._raw = path.open("wb")
        self._gzip = GzipWriter(self._raw, level)
        self._lines: list[bytes] = [header] if header else []
        self._buffered = len(header)

    def add(self, line: bytes, event: Event) -> None:
        self.add_many([line], [event])

    def add_many(self, lines: list[bytes], events: list[Event]) -> None:
        """Add the lines of these events (same order); compress once a buffer is full."""
        self._lines.extend(lines)
        self._buffered += sum(map(len, lines))
        if self._buffered >= BUFFER_BYTES:
            self._compress()
        self._hold(events)

    def _compress(self) -> None:
        if self._lines:
            self._gzip.write_lines(self._lines)
            self._lines, self._buffered = [], 0

    @property
    def compressed_bytes(self) -> int:
        """Bytes compressed so far, plus the buffer still to compress."""
        return self._gzip.bytes_out + self._buffered // 8  # igzip level 1: ~8.5x

    def finish(self) -> int:
        """Close the spool file; return its final size."""
        self._compress()
        self._gzip.close()
        self._raw.close()
        return self.path.stat().st_size

    def discard(self) -> None:
        if not self._raw.closed:
            self._raw.close()
        self._lines = []
        self.path.unlink(missing_ok=True)
