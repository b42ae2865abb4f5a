"""Open parts: one spool file per (partition, directory) while an hourly part is being filled.

Lines are compressed as they arrive into a local gzip file, so memory stays flat whatever the
part's size; the finished file is what is uploaded. The line format is NDJSON (one normalised
document per line) or CSV with a header and a column mapping (seed 004's style).
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from worker.records import Event
from worker.sinks.s3_keys import HourSlot

LineEncoder = Callable[[dict[str, Any]], bytes]

DEFAULT_CSV_COLUMNS = ("event_id", "type", "event", "timestamp", "received_at", "user_id",
                       "anonymous_id", "api_key_id", "customer_id", "usage_plan_name", "status")


def ndjson_line(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document) + b"\n"


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
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class OpenPart:
    """A part being filled: its spool file, its hour, the offsets and events it holds."""

    def __init__(self, path: Path, directory: str, slot: HourSlot, level: int,
                 header: bytes = b"") -> None:
        self.path = path
        self.directory = directory
        self.slot = slot
        self.opened_at = time.monotonic()
        self.first_offset: int | None = None
        self.last_offset = -1
        self.events: list[Event] = []
        self._raw = path.open("wb")
        # mtime=0: the same lines always give the same bytes.
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=level, mtime=0)
        if header:
            self._gzip.write(header)

    def add(self, line: bytes, event: Event) -> None:
        self._gzip.write(line)
        offset = event.position.offset
        if self.first_offset is None or offset < self.first_offset:
            self.first_offset = offset
        self.last_offset = max(self.last_offset, offset)
        self.events.append(event)

    @property
    def compressed_bytes(self) -> int:
        """Bytes written to the spool file so far (zlib holds back a little)."""
        return self._raw.tell()

    def finish(self) -> int:
        """Close the spool file; return its final size."""
        self._gzip.close()
        self._raw.close()
        return self.path.stat().st_size

    def discard(self) -> None:
        if not self._raw.closed:
            self._gzip.close()
            self._raw.close()
        self.path.unlink(missing_ok=True)
