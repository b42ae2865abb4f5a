"""Merging hour parts into objects of a target size: the plan and the local merge of files.

Hourly publication (``worker.sinks.s3.hourly``) keeps a partition's parts of an hour under
``_sluice/hour-parts/`` and, once the hour has closed, merges them into one object (or a few, at
SLUICE_S3_MERGE_TARGET_BYTES) in the query layout. This module holds what needs no S3:

* ``plan_outputs``: which parts go into which output, and the output's key. Deterministic: the
  same parts give the same outputs, so whoever finishes a merge writes the same objects.
* ``append_gzip`` / ``gzip_header``: gzip NDJSON and CSV merge by concatenating the parts' gzip
  members (RFC 1952 allows several members; DuckDB, Athena and every gzip reader read them as
  one stream): no decompression, memory independent of the size. Hour parts of CSV are written
  without a header; a merged CSV object starts with one small member holding it.
* ``merge_parquet``: Parquet parts are read a row group at a time (pyarrow) and written as the
  row groups of one file, so at most one row group is in memory.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from worker.sinks.s3.formats.base import CsvFormat, NdjsonFormat
from worker.sinks.s3.markers import MergeOutput

# Bytes read from a downloaded stream, or copied between files, per call.
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PartName:
    """What an hour part's file name says: ``<topic>+<partition>+<first>+<last>.<ext>``."""

    topic: str
    partition: int
    first: int
    last: int
    extension: str

    @classmethod
    def parse(cls, file_name: str) -> PartName:
        topic, partition, first, rest = file_name.split("+")
        last, extension = rest.split(".", 1)
        return cls(topic, int(partition), int(first), int(last), extension)

    def file_name(self) -> str:
        return (f"{self.topic}+{self.partition}+{self.first:012d}+{self.last:012d}."
                f"{self.extension}")


def plan_outputs(directory_key: str, parts: Sequence[tuple[str, int]],
                 target_bytes: int, overhead: int = 0) -> tuple[MergeOutput, ...]:
    """Group one (partition, hour, directory)'s parts, in offset order, into outputs of at most
    `target_bytes` (an output holds at least one part); each output is named
    ``<directory_key><topic>+<partition>+<first>+<last>.<ext>`` after its first and last part.

    `parts` are (hour part key, size in bytes); `overhead` is what each output adds to its
    parts (a CSV header's gzip member)."""
    ordered = sorted(parts, key=lambda item: PartName.parse(item[0].rsplit("/", 1)[1]).first)
    groups: list[list[str]] = []
    size = 0
    for key, part_bytes in ordered:
        if not groups or (size + part_bytes > target_bytes and groups[-1]):
            groups.append([])
            size = overhead
        groups[-1].append(key)
        size += part_bytes
    outputs = []
    for group in groups:
        first = PartName.parse(group[0].rsplit("/", 1)[1])
        last = PartName.parse(group[-1].rsplit("/", 1)[1])
        name = PartName(first.topic, first.partition, first.first, last.last, first.extension)
        outputs.append(MergeOutput(directory_key + name.file_name(), tuple(group)))
    return tuple(outputs)


def gzip_header(header: str) -> bytes:
    """The CSV header as a gzip member of its own, byte for byte the same every time."""
    return gzip.compress(header.encode(), compresslevel=6, mtime=0) if header else b""


def append_gzip(out: BinaryIO, part: Path) -> None:
    """Append a gzip part's members to `out` as they are."""
    with part.open("rb") as source:
        while chunk := source.read(COPY_CHUNK):
            out.write(chunk)


def is_parquet(key: str) -> bool:
    return key.endswith(".parquet")


# How an object of each format is stored: (content type, content encoding), as the formats
# store their parts. Parquet's is written out here so that merging needs no pyarrow import; a
# unit test keeps it equal to ParquetFormat's.
_STORED_AS: dict[str, tuple[str, str | None]] = {
    **{form.extension: (form.content_type, form.content_encoding)
       for form in (NdjsonFormat, CsvFormat)},
    "parquet": ("application/vnd.apache.parquet", None),
}
CSV_EXTENSION = CsvFormat.extension


def key_format(key: str) -> str:
    """The format (file extension) of a part or object key: ``ndjson.gz``, ``csv.gz``, …"""
    return PartName.parse(key.rsplit("/", 1)[-1]).extension


def merged_as(key: str) -> tuple[str, str | None]:
    """Content type and content encoding of the object `key` (by its format)."""
    return _STORED_AS[key_format(key)]


def merge_parquet(parts: Sequence[Path], out: Path) -> None:
    """Write the row groups of `parts`, in order, as one Parquet file (same compression as the
    first part); one row group in memory at a time. Its schema has every part's columns: a
    part written before a column was added to the document model (a rolling upgrade within the
    hour) gets nulls there, as a reader of the separate files would see."""
    import pyarrow as pa  # only hourly Parquet merges need it
    import pyarrow.parquet as pq

    schema = pa.unify_schemas([pq.read_schema(path) for path in parts]) if parts else None
    writer: pq.ParquetWriter | None = None
    try:
        for path in parts:
            source = pq.ParquetFile(path)
            if writer is None:
                metadata = source.metadata
                compression = (_writer_codec(metadata.row_group(0).column(0).compression)
                               if metadata.num_row_groups and metadata.num_columns else "zstd")
                writer = pq.ParquetWriter(out, schema, compression=compression)
            for index in range(source.num_row_groups):
                rows = source.metadata.row_group(index).num_rows
                table = source.read_row_group(index)
                if not table.schema.equals(schema):
                    table = pa.table([table.column(field.name) if field.name in table.schema.names
                                      else pa.nulls(rows, field.type) for field in schema],
                                     schema=schema)
                writer.write_table(table, row_group_size=max(1, rows))
    finally:
        if writer is not None:
            writer.close()


# Codec names as Parquet metadata reports them, where pyarrow's writer names them otherwise.
_WRITER_CODECS = {"UNCOMPRESSED": "none", "LZ4_RAW": "lz4"}


def _writer_codec(reported: str) -> str:
    """The ParquetWriter `compression` of a column chunk's reported codec."""
    return _WRITER_CODECS.get(reported.upper(), reported.lower())
