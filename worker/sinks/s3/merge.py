"""Merging hour parts into objects of a target size: the plan and the local merge of files.

Hourly publication (``worker.sinks.s3.hourly``) keeps a partition's parts of an hour under
``_sluice/hour-parts/`` and, once the hour has closed, merges them into one object (or a few, at
SLUICE_S3_MERGE_TARGET_BYTES) in the query layout. This module holds what needs no S3:

* ``plan_outputs``: which parts go into which output, and the output's key. Deterministic: the
  same parts give the same outputs, so whoever finishes a merge writes the same objects.
* ``append_gzip`` / ``gzip_header``: gzip NDJSON and CSV merge by concatenating the parts' gzip
  members (RFC 1952 allows several members; DuckDB, Athena and every gzip reader read them as
  one stream): memory independent of the size. Each part is decompressed as it is copied, only
  to check that it is whole (igzip, a few MiB at a time, nothing kept): a truncated or
  corrupt part would make every reader stop at it, so it is refused (``BadPart``) instead of
  hiding the rest of the object. Hour parts of CSV are written without a header; a merged CSV
  object starts with one small member holding the header its parts were written with.
* ``merge_parquet``: Parquet parts are read a row group at a time (pyarrow) and written as the
  row groups of one file, so at most one row group is in memory. Parts written by versions
  whose schemas differ by columns (one added a column) merge under the union of their
  columns, the missing ones null; parts whose columns conflict (one name, two types), or that
  are not readable Parquet, are refused (``BadPart``).

A refused part makes its merge a parked one (``worker.sinks.s3.parking``).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isal import isal_zlib

from worker.sinks.s3.formats.base import CsvFormat, NdjsonFormat
from worker.sinks.s3.markers import MergeOutput

# Bytes read from a downloaded stream, or copied between files, per call.
COPY_CHUNK = 1024 * 1024
# Most bytes one call decompresses while a gzip part is checked (then thrown away).
CHECK_OUTPUT_BYTES = 4 * 1024 * 1024
# zlib's window bits for a gzip member (header and trailer around the deflate stream).
_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS

CORRUPT_PART = "corrupt_part"
SCHEMA_MISMATCH = "schema_mismatch"


class BadPart(Exception):
    """A part a merge cannot use: ``cause`` is CORRUPT_PART (not a whole gzip stream, not
    readable Parquet) or SCHEMA_MISMATCH (columns that conflict with the other parts')."""

    def __init__(self, cause: str, path: Path, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.path = path
        self.detail = detail


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
    """Append a gzip part's members to `out` as they are; BadPart if they are not whole gzip
    members (truncated, corrupt, or not gzip at all)."""
    check = _GzipCheck(part)
    with part.open("rb") as source:
        while chunk := source.read(COPY_CHUNK):
            check.feed(chunk)
            out.write(chunk)
    check.finish()


class _GzipCheck:
    """Follows a stream of gzip members through their trailers (CRC and length checked by
    the decompressor), keeping none of what it decompresses."""

    def __init__(self, part: Path) -> None:
        self._part = part
        self._member = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        self._in_member = False
        self._seen = 0

    def feed(self, data: bytes) -> None:
        self._seen += len(data)
        try:
            while data:
                self._in_member = True
                self._member.decompress(data, CHECK_OUTPUT_BYTES)
                if self._member.eof:
                    data = self._member.unused_data
                    self._member = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
                    self._in_member = False
                else:
                    data = self._member.unconsumed_tail
        except isal_zlib.error as error:
            raise BadPart(CORRUPT_PART, self._part,
                          f"is not a valid gzip stream (within its first {self._seen} bytes: "
                          f"{error})") from None

    def finish(self) -> None:
        """BadPart unless the stream ended at the end of a whole member."""
        try:
            while self._in_member and not self._member.eof:
                if not self._member.decompress(self._member.unconsumed_tail,
                                               CHECK_OUTPUT_BYTES):
                    break
        except isal_zlib.error as error:
            raise BadPart(CORRUPT_PART, self._part,
                          f"is not a valid gzip stream ({error})") from None
        if self._in_member and not self._member.eof:
            raise BadPart(CORRUPT_PART, self._part,
                          "is truncated: its gzip stream ends before its last member does")
        if not self._seen:
            raise BadPart(CORRUPT_PART, self._part, "is empty (0 bytes)")


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
    """Write the row groups of `parts`, in order, as one Parquet file (the union of their
    columns, the compression of the first part); one row group in memory at a time. BadPart
    for a part that is not readable Parquet or whose columns conflict with the others'."""
    import pyarrow as pa
    import pyarrow.parquet as pq  # only hourly Parquet merges need it

    sources = []
    for path in parts:
        try:
            sources.append(pq.ParquetFile(path))
        except (pa.ArrowException, OSError) as error:
            raise BadPart(CORRUPT_PART, path, f"is not readable Parquet: {error}") from None
    schema = _union_schema([source.schema_arrow for source in sources], parts)
    metadata = sources[0].metadata
    compression = (_writer_codec(metadata.row_group(0).column(0).compression)
                   if metadata.num_row_groups and metadata.num_columns else "zstd")
    with pq.ParquetWriter(out, schema, compression=compression) as writer:
        for path, source in zip(parts, sources, strict=True):
            for index in range(source.num_row_groups):
                rows = source.metadata.row_group(index).num_rows
                try:
                    table = source.read_row_group(index)
                except (pa.ArrowException, OSError) as error:
                    raise BadPart(CORRUPT_PART, path, f"has a row group ({index}) that is "
                                  f"not readable: {error}") from None
                writer.write_table(_as_schema(table, schema), row_group_size=max(1, rows))


def _union_schema(schemas: list, parts: Sequence[Path]):  # noqa: ANN202 (pyarrow's Schema)
    """The parts' columns together, in order of appearance; BadPart naming the first part
    whose columns conflict with those before it."""
    import pyarrow as pa

    union = schemas[0]
    for path, schema in zip(parts[1:], schemas[1:], strict=True):
        if schema == union:
            continue
        try:
            union = pa.unify_schemas([union, schema])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise BadPart(SCHEMA_MISMATCH, path,
                          f"has columns that conflict with the other parts' ({error})") from None
    return union


def _as_schema(table, schema):  # noqa: ANN001, ANN202 (pyarrow's Table and Schema)
    """`table` with `schema`'s columns, in its order: absent columns are null."""
    import pyarrow as pa

    if table.schema == schema:
        return table
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


# Codec names as Parquet metadata reports them, where pyarrow's writer names them otherwise.
_WRITER_CODECS = {"UNCOMPRESSED": "none", "LZ4_RAW": "lz4"}


def _writer_codec(reported: str) -> str:
    """The ParquetWriter `compression` of a column chunk's reported codec."""
    return _WRITER_CODECS.get(reported.upper(), reported.lower())
