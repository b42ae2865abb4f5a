"""The S3 sink's object formats: what each takes from an event, its keys' extension, its parts."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from worker.config import SettingsError, load_settings
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.s3.formats.base import CsvFormat, NdjsonFormat, part_format
from worker.sinks.s3.formats.parquet import ParquetFormat
from worker.sinks.s3.naming import HourSlot

SLOT = HourSlot.of("2026-11-22T21:00:00.000Z")
DOCUMENT = {"event_id": "e1", "type": "track", "timestamp": "2026-11-22T21:05:00.000Z",
            "properties": {"plan": "pro"}}


def _event(encoded: bytes = b"") -> Event:
    return Event("e1", DOCUMENT, SourceRecord(None, b"", KafkaPosition("a.b", 0, 7)),
                 encoded=encoded)


def test_the_format_setting_picks_the_format_and_its_options() -> None:
    assert isinstance(part_format(load_settings()), NdjsonFormat)
    assert isinstance(part_format(load_settings(s3_format="csv")), CsvFormat)
    chosen = part_format(load_settings(s3_format="parquet", s3_parquet_compression="snappy"))
    assert isinstance(chosen, ParquetFormat)
    assert (chosen.extension, chosen.content_type) == ("parquet",
                                                      "application/vnd.apache.parquet")


def test_an_unknown_parquet_compression_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match="S3_PARQUET_COMPRESSION"):
        load_settings(s3_format="parquet", s3_parquet_compression="brotli")


def test_ndjson_reuses_the_pipelines_encoding() -> None:
    ndjson = NdjsonFormat(1)
    assert ndjson.item(_event(b'{"as":"encoded"}')) == b'{"as":"encoded"}\n'
    assert ndjson.item(_event()).startswith(b'{"event_id":"e1"')


@pytest.mark.parametrize("chosen", [NdjsonFormat(1), CsvFormat(["id=event_id"], 1),
                                    ParquetFormat("zstd", 1 << 20)])
def test_every_format_spools_a_readable_file_next_to_the_given_name(
    chosen: NdjsonFormat | CsvFormat | ParquetFormat, tmp_path: Path
) -> None:
    # Topic names may contain dots: the suffix is appended, never substituted.
    part = chosen.open_part(tmp_path / "a.b-0-1", "d/", SLOT)
    event = _event(b'{"event_id":"e1"}')
    part.add_many([chosen.item(event)], [event])
    size = part.finish()
    assert part.path.parent == tmp_path and part.path.name.startswith("a.b-0-1.part.")
    assert size == part.path.stat().st_size and (part.first_offset, part.last_offset) == (7, 7)
    if isinstance(chosen, ParquetFormat):
        assert pq.read_table(part.path).column("event_id").to_pylist() == ["e1"]
    else:
        assert b"e1" in gzip.decompress(part.path.read_bytes())
    part.discard()
    assert list(tmp_path.iterdir()) == []
