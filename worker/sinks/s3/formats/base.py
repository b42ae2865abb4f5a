"""Object formats of the S3 sink: what a part stores per event, its extension and content type.

The sink files events into open parts the same way whatever the format; a format says what it
takes from each event (``item``) and opens the part that spools those items to a local file:

* ``ndjson``: gzip NDJSON lines (``worker.sinks.s3.formats.gzip_lines``), the pipeline's encoding
  reused;
* ``csv``: gzip CSV with a header and a column mapping (``worker.sinks.s3.formats.gzip_lines``);
* ``parquet``: Parquet with the one document schema (``worker.sinks.s3.formats.parquet``,
  ``worker.events.parquet_schema``); pyarrow is imported only when this format is chosen.

Every part has the same small interface (``Part``), so flushing, staging, markers and key names
do not depend on the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from worker.config import S3Format, Settings
from worker.events.records import Event
from worker.sinks.s3.formats.gzip_lines import CsvColumns, OpenPart, ndjson_line
from worker.sinks.s3.naming import HourSlot


class Part(Protocol):
    """A part being filled: its spool file, its hour, the offsets and events it holds."""

    path: Path
    directory: str
    slot: HourSlot
    opened_at: float
    first_offset: int | None
    last_offset: int
    events: list[Event]

    def add_many(self, items: list[Any], events: list[Event]) -> None:
        """Add the items of these events (same order)."""

    @property
    def compressed_bytes(self) -> int:
        """About how many bytes the finished file will have (what the part limits compare)."""

    def finish(self) -> int:
        """Close the spool file; return its size."""

    def discard(self) -> None:
        """Close and remove the spool file."""


class PartFormat(Protocol):
    """One object format: the extension of its keys, its content and transfer encoding, the
    header its files start with (CSV's column names; merged hourly objects get it once), and
    its parts."""

    extension: str
    content_type: str
    content_encoding: str | None
    header: bytes

    def item(self, event: Event) -> Any:
        """What a part of this format stores for the event (a line, or the document)."""

    def open_part(self, path: Path, directory: str, slot: HourSlot,
                  with_header: bool = True) -> Part:
        """A new part spooling to `path` (the path is given its format's suffix); without the
        header when it is to be merged into an object that has one."""


class NdjsonFormat:
    """gzip NDJSON: one normalised document per line."""

    extension = "ndjson.gz"
    content_type = "application/x-ndjson"
    content_encoding = "gzip"
    header = b""

    def __init__(self, gzip_level: int) -> None:
        self._level = gzip_level

    def item(self, event: Event) -> bytes:
        # The pipeline encoded the document once already (for every sink that writes it as is).
        return (event.encoded + b"\n") if event.encoded else ndjson_line(event.document)

    def open_part(self, path: Path, directory: str, slot: HourSlot,
                  with_header: bool = True) -> Part:
        return OpenPart(_with_suffix(path, ".part.gz"), directory, slot, self._level)


class CsvFormat:
    """gzip CSV with a header row and a column mapping (SLUICE_S3_CSV_COLUMNS)."""

    extension = "csv.gz"
    content_type = "text/csv"
    content_encoding = "gzip"

    def __init__(self, columns: list[str], gzip_level: int) -> None:
        self._columns = CsvColumns(columns)
        self.header = self._columns.header()
        self._level = gzip_level

    def item(self, event: Event) -> bytes:
        return self._columns.line(event.document)

    def open_part(self, path: Path, directory: str, slot: HourSlot,
                  with_header: bool = True) -> Part:
        return OpenPart(_with_suffix(path, ".part.gz"), directory, slot, self._level,
                        self.header if with_header else b"")


def _with_suffix(path: Path, suffix: str) -> Path:
    # Appended, not replaced: topic names may contain dots.
    return path.with_name(path.name + suffix)


def part_format(settings: Settings) -> PartFormat:
    """The format SLUICE_S3_FORMAT names, configured from the settings."""
    if settings.s3_format == S3Format.PARQUET:
        from worker.sinks.s3.formats.parquet import ParquetFormat

        return ParquetFormat(settings.s3_parquet_compression.value,
                             settings.s3_parquet_row_group_bytes)
    if settings.s3_format == S3Format.CSV:
        return CsvFormat(settings.s3_csv_columns, settings.s3_gzip_level)
    return NdjsonFormat(settings.s3_gzip_level)
