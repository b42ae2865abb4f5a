"""A Kafka record's headers on its documents: text where UTF-8, marked base64 otherwise."""

import base64
from dataclasses import replace

import orjson

from worker.config import load_settings
from worker.events.decoding import EventKind, InputForm, RawEvent
from worker.events.headers import headers_field
from worker.events.normalize import normalize
from worker.events.parquet_schema import record_batch
from worker.events.records import KafkaPosition, SourceRecord
from worker.pipeline.preparation import Preparation
from worker.pipeline.progress import Progress
from worker.sinks.s3.formats.base import CsvFormat

RECORD = SourceRecord(None, b"{}", KafkaPosition("events", 2, 41), 1_795_000_000_000, headers=(
    ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("content-type", b"application/json; charset=utf-8"),
    ("x-digest", b"\xde\xad\xbe\xef"),
    ("x-hop", b"edge"), ("x-hop", b"\xff"), ("x-hop", b"core"),
    ("x-empty", b""),
    ("sluice.replayed_from", b"events.dlq/0/7"), ("sluice.replay.count", b"1"),
))
TRACK = RawEvent(EventKind.SEGMENT, InputForm.SEGMENT,
                 {"type": "track", "event": "Signed Up", "userId": "u1"})
EXPECTED = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "content-type": "application/json; charset=utf-8",
    "x-digest": {"base64": base64.b64encode(b"\xde\xad\xbe\xef").decode()},
    "x-hop": ["edge", {"base64": "/w=="}, "core"],
    "x-empty": "",
}


def test_record_headers_are_kept_as_text_or_marked_base64_without_sluices_own() -> None:
    _, document = normalize(TRACK, RECORD)
    assert document["headers"] == EXPECTED


def test_a_record_with_only_sluices_headers_or_none_has_no_headers_field() -> None:
    replayed = replace(RECORD, headers=(("sluice.replay.event_id", b"e-1"),))
    assert "headers" not in normalize(TRACK, replayed)[1]
    assert "headers" not in normalize(TRACK, replace(RECORD, headers=()))[1]


def test_a_replayed_record_gets_the_document_its_first_pass_wrote() -> None:
    first = replace(RECORD, headers=(("traceparent", b"00-1"),))
    replayed = replace(first, headers=(*first.headers, ("sluice.replayed_from", b"dlq/0/3"),
                                       ("sluice.stage", b"elasticsearch")))
    assert normalize(TRACK, first) == normalize(TRACK, replayed)


def test_headers_reach_every_format_and_the_setting_leaves_them_out() -> None:
    record = replace(RECORD, value=orjson.dumps(TRACK.fields))
    settings = load_settings(sinks=["counting"], web_port=0)
    (event,) = Preparation(settings, {}.get, [], Progress()).prepare_batch([record]).events
    assert orjson.loads(event.encoded)["headers"] == EXPECTED  # Elasticsearch and NDJSON
    csv = CsvFormat(["id=event_id", "trace=headers.traceparent"], 1).item(event)
    assert csv.decode().endswith(",00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n")
    assert orjson.loads(record_batch([event.document]).column("headers")[0].as_py()) == EXPECTED
    without = load_settings(sinks=["counting"], web_port=0, document_headers=False)
    (event,) = Preparation(without, {}.get, [], Progress()).prepare_batch([record]).events
    assert "headers" not in event.document and b'"headers"' not in event.encoded


def test_the_events_of_one_record_share_one_conversion_and_records_never_mix() -> None:
    first = headers_field(RECORD.headers)
    assert headers_field(RECORD.headers) is first
    other = (("traceparent", b"00-2"),)
    assert headers_field(other) == {"traceparent": "00-2"}
    assert headers_field(tuple(list(RECORD.headers))) == first
