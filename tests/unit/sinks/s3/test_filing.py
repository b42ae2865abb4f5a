"""Filing events into open parts: the directory of each event, with the template's cache."""

from __future__ import annotations

from pathlib import Path

import orjson

from worker.config import load_settings
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.s3.filing import PartFiler, PartitionState, template_fields
from worker.sinks.s3.formats.base import part_format


def _event(offset: int, source_id: str, stamp: str = "2026-11-20T10:15:00.000Z") -> Event:
    document = {"event_id": f"e-{offset}", "type": "track", "source_id": source_id,
                "timestamp": stamp, "received_at": stamp}
    record = SourceRecord(None, b"{}", KafkaPosition("events", 0, offset))
    return Event(f"e-{offset}", document, record, encoded=orjson.dumps(document))


def _filed(template: str, events: list[Event], tmp_path: Path) -> dict[str, int]:
    settings = load_settings(s3_key_template=template)
    filer = PartFiler(settings, part_format(settings), tmp_path)
    state = PartitionState(("events", 0), "me/1")
    assert filer.append(state, events) == len(events)
    counts = {directory: len(part.events) for directory, part in state.parts.items()}
    filer.discard(filer.take_parts(state))
    return counts


def test_template_fields_are_named_whatever_their_format_spec() -> None:
    assert template_fields("sources/{source_id:.3}/{event_type!s}/{date}/") == {
        "source_id", "event_type", "date"}


def test_events_are_filed_by_every_field_the_template_uses(tmp_path: Path) -> None:
    # A format spec must not hide a field from the directory cache: `abcd` and `abxy` are
    # different directories under {source_id:.3}, `abcd` and `abcz` the same one.
    events = [_event(0, "abcd"), _event(1, "abxy"), _event(2, "abcz"),
              _event(3, "abcd", stamp="2026-11-20T11:00:00.000Z")]
    assert _filed("sources/{source_id:.3}/{date}/{hour}/", events, tmp_path) == {
        "sources/abc/2026-11-20/10/": 2, "sources/abx/2026-11-20/10/": 1,
        "sources/abc/2026-11-20/11/": 1}
    assert _filed("hive", events, tmp_path) == {
        "year=2026/month=11/day=20/hour=10/": 3, "year=2026/month=11/day=20/hour=11/": 1}
