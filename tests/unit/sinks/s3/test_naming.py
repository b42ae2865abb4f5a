"""S3 keys, templates and part files, without a server."""

import gzip
from pathlib import Path

import orjson
import pytest

from worker.config.s3 import KeyTemplateError, resolve_template
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.s3.formats.gzip_lines import CsvColumns, OpenPart, ndjson_line
from worker.sinks.s3.naming import (
    HourSlot,
    marker_key,
    object_key,
    render_directory,
)

DOCUMENT = {"event_id": "e1", "type": "track", "source_id": "src/1 x",
            "timestamp": "2026-11-22T21:05:00.000Z"}


def test_hive_preset_files_events_under_their_hour() -> None:
    template = resolve_template("hive")
    directory = render_directory(template, HourSlot.of("2026-11-22T21:05:00.000Z"), DOCUMENT,
                                 "events", 3)
    assert directory == "year=2026/month=11/day=22/hour=21/"


def test_segment_preset_uses_source_id_and_the_day_in_epoch_milliseconds() -> None:
    template = resolve_template("segment")
    directory = render_directory(template, HourSlot.of("2026-11-22T21:05:00.000Z"), DOCUMENT,
                                 "events", 3)
    assert directory == "segment-logs/src_1_x/1795305600000/"


def test_custom_template_gets_a_trailing_slash_and_every_placeholder() -> None:
    template = resolve_template("{topic}/{event_type}/{date}/{partition}")
    directory = render_directory(template, HourSlot.of("2026-11-22T01:00:00.000Z"), DOCUMENT,
                                 "events", 7)
    assert directory == "events/track/2026-11-22/7/"


@pytest.mark.parametrize("template", ["{nope}/", "{year"], ids=["unknown", "malformed"])
def test_bad_templates_are_rejected_at_start_up(template: str) -> None:
    with pytest.raises(KeyTemplateError):
        resolve_template(template)


def test_object_keys_carry_topic_partition_and_offsets() -> None:
    key = object_key("logs/", "year=2026/", "events", 2, 10, 1234, "ndjson.gz")
    assert key == "logs/year=2026/events+2+000000000010+000000001234.ndjson.gz"
    assert marker_key("logs/", "events", 2) == "logs/_sluice/markers/events/2.json"


def test_part_spools_gzip_lines_and_tracks_offsets(tmp_path: Path) -> None:
    part = OpenPart(tmp_path / "p.gz", "d/", HourSlot.of("2026-11-22T21:00:00.000Z"), 1)
    for offset in (5, 3, 9):
        record = SourceRecord(None, b"", KafkaPosition("events", 0, offset))
        part.add(ndjson_line({"n": offset}), Event(f"e{offset}", {}, record))
    size = part.finish()
    assert (part.first_offset, part.last_offset, len(part.events)) == (3, 9, 3)
    assert size == (tmp_path / "p.gz").stat().st_size
    lines = gzip.decompress((tmp_path / "p.gz").read_bytes()).splitlines()
    assert [orjson.loads(line)["n"] for line in lines] == [5, 3, 9]


def test_csv_columns_map_nested_paths_and_serialise_objects() -> None:
    columns = CsvColumns(["id=event_id", "type", "revenue=properties.revenue", "context"])
    document = {"event_id": "e1", "type": "track", "properties": {"revenue": 9.5},
                "context": {"ip": "1.2.3.4"}}
    assert columns.header() == b"id,type,revenue,context\n"
    assert columns.line(document) == b'e1,track,9.5,"{""ip"":""1.2.3.4""}"\n'
    assert columns.line({}) == b",,,\n"
