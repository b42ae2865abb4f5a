"""Parquet parts: documents streamed to a local Parquet file a row group at a time.

A part holds at most a small batch of documents (``CONVERT_ROWS``) and the Arrow batches of one
row group (SLUICE_S3_PARQUET_ROW_GROUP_BYTES of uncompressed column data) in memory; each full
row group is compressed and written to the spool file at once by pyarrow's ``ParquetWriter``, so
memory stays flat whatever the part's size. Every file has the one schema of
``worker.events.parquet_schema``: files of different parts, hours and workers combine as they are.

The part's size, for the part limits, is the bytes already in the spool file plus an estimate
of the row group still in memory.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from worker.events.parquet_schema import SCHEMA, record_batch
from worker.events.records import Event
from worker.sinks.s3.formats.gzip_lines import PartHolding
from worker.sinks.s3.naming import HourSlot

# Documents are converted to Arrow a batch at a time: large enough for pyarrow's per-call cost
# not to matter (about 3 µs an event at 1000), small enough to hold little (by their JSON size).
CONVERT_ROWS = 1000
CONVERT_BYTES = 1024 * 1024
# Uncompressed Arrow bytes per compressed Parquet byte, to estimate a row group not yet
# written (zstd on the benchmark's documents: ~9.6; the estimate errs towards larger).
ESTIMATED_RATIO = 8


class ParquetFormat:
    """Parquet with the document schema; compression and row-group size from the settings."""

    extension = "parquet"
    content_type = "application/vnd.apache.parquet"
    # A Parquet file is compressed inside (per column chunk); it is stored as it is.
    content_encoding = None
    header = b""

    def __init__(self, compression: str, row_group_bytes: int) -> None:
        self._compression = compression
        self._row_group_bytes = row_group_bytes

    def item(self, event: Event) -> Event:
        # The whole event until its batch is converted: the document, and the size of its JSON.
        return event

    def open_part(self, path: Path, directory: str, slot: HourSlot,
                  with_header: bool = True) -> ParquetPart:
        return ParquetPart(path.with_name(path.name + ".part.parquet"), directory, slot,
                           self._compression, self._row_group_bytes)


class ParquetPart(PartHolding):
    """A Parquet part being filled (the ``worker.sinks.s3.formats.base.Part`` interface)."""

    def __init__(self, path: Path, directory: str, slot: HourSlot, compression: str,
                 row_group_bytes: int) -> None:
        super().__init__(path, directory, slot)
        self._row_group_bytes = row_group_bytes
        self._file = pa.OSFile(str(path), "wb")
        self._writer = pq.ParquetWriter(self._file, SCHEMA, compression=compression)
        self._documents: list[dict[str, Any]] = []
        self._document_bytes = 0
        self._batches: list[pa.RecordBatch] = []
        self._batch_bytes = 0

    def add_many(self, items: list[Any], events: list[Event]) -> None:
        """Add these events' documents (``items``: the events with their documents, in the
        order of ``events``); convert and write as batches fill up."""
        for item in items:
            self._documents.append(item.document)
            self._document_bytes += len(item.encoded)
        if len(self._documents) >= CONVERT_ROWS or self._document_bytes >= CONVERT_BYTES:
            self._convert()
        self._hold(events)

    def _convert(self) -> None:
        if self._documents:
            batch = record_batch(self._documents)
            self._documents, self._document_bytes = [], 0
            self._batches.append(batch)
            self._batch_bytes += batch.nbytes
        if self._batch_bytes >= self._row_group_bytes:
            self._write_row_group()

    def _write_row_group(self) -> None:
        if self._batches:
            table = pa.Table.from_batches(self._batches, schema=SCHEMA)
            self._writer.write_table(table, row_group_size=table.num_rows)
            self._batches, self._batch_bytes = [], 0
            del table
            # Hand the row group's memory back: without it the allocator (mimalloc) keeps about
            # three row groups' worth resident (measured: +79 MiB instead of +46 MiB of RSS
            # for 16 MiB row groups).
            pa.default_memory_pool().release_unused()

    @property
    def compressed_bytes(self) -> int:
        """Bytes in the spool file, plus an estimate of the row group still in memory."""
        return self._file.tell() + self._batch_bytes // ESTIMATED_RATIO

    def finish(self) -> int:
        """Write what is left, close the file; return its size."""
        self._convert()
        self._write_row_group()
        self._writer.close()
        self._file.close()
        return self.path.stat().st_size

    def discard(self) -> None:
        if not self._file.closed:
            # The writer first: left open, it would write its footer to a closed file when
            # collected.
            with contextlib.suppress(OSError, pa.ArrowException):
                self._writer.close()
            self._file.close()
        self._documents, self._batches = [], []
        self.path.unlink(missing_ok=True)
