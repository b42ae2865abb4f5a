"""Every input form, and every malformed variant, by name."""

import base64

import orjson
import pytest

from worker.events.decoding import EventKind, InputForm, decode_record
from worker.events.errors import (
    EmptyRecord,
    InvalidBase64,
    InvalidBatch,
    InvalidJson,
    NotAnObject,
    RecordTooLarge,
    UnknownFormat,
)

LIMIT = 1_048_576
TRACK = {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m-1"}
ACCESS = {"requestId": "r-1", "httpMethod": "GET", "status": 200,
          "identity": {"apiKeyId": "key-1"}}


def _b64(value: object) -> bytes:
    return base64.b64encode(orjson.dumps(value))


# --- the four forms -----------------------------------------------------------------------------


def test_segment_event_is_one_segment_event() -> None:
    decoded = decode_record(orjson.dumps(TRACK), LIMIT)
    assert [(e.kind, e.form) for e in decoded.events] == [(EventKind.SEGMENT, InputForm.SEGMENT)]
    assert decoded.events[0].fields == TRACK
    assert decoded.failures == []


def test_segment_batch_yields_each_event_with_its_index() -> None:
    envelope = {"batch": [TRACK, {**TRACK, "messageId": "m-2"}], "sentAt": "2026-11-22T10:00:00Z"}
    decoded = decode_record(orjson.dumps(envelope), LIMIT)
    assert [e.batch_index for e in decoded.events] == [0, 1]
    assert {e.form for e in decoded.events} == {InputForm.SEGMENT_BATCH}


def test_batch_envelope_context_and_sent_at_apply_to_events_without_their_own() -> None:
    envelope = {
        "batch": [{**TRACK, "context": {"ip": "1.2.3.4"}}, {**TRACK, "sentAt": "own"}],
        "context": {"library": {"name": "analytics-python"}, "ip": "9.9.9.9"},
        "sentAt": "2026-11-22T10:00:00Z",
    }
    first, second = decode_record(orjson.dumps(envelope), LIMIT).events
    assert first.fields["context"] == {"library": {"name": "analytics-python"}, "ip": "1.2.3.4"}
    assert first.fields["sentAt"] == "2026-11-22T10:00:00Z"
    assert second.fields["sentAt"] == "own"


def test_firehose_envelope_is_unwrapped_to_its_segment_event() -> None:
    envelope = {"DeliveryStreamName": "segment", "Record": {"Data": _b64(TRACK).decode()}}
    (event,) = decode_record(orjson.dumps(envelope), LIMIT).events
    assert (event.kind, event.form, event.fields) == (EventKind.SEGMENT, InputForm.FIREHOSE, TRACK)


def test_firehose_envelope_may_carry_an_access_log() -> None:
    envelope = {"DeliveryStreamName": "logs", "Record": {"Data": _b64(ACCESS).decode()}}
    (event,) = decode_record(orjson.dumps(envelope), LIMIT).events
    assert (event.kind, event.form) == (EventKind.ACCESS_LOG, InputForm.FIREHOSE)


def test_bare_base64_bytes_of_a_json_object_are_decoded() -> None:
    (event,) = decode_record(_b64(TRACK), LIMIT).events
    assert (event.form, event.fields) == (InputForm.BASE64, TRACK)


def test_base64_inside_a_json_string_is_decoded() -> None:
    (event,) = decode_record(orjson.dumps(_b64(TRACK).decode()), LIMIT).events
    assert event.form is InputForm.BASE64


def test_url_safe_unpadded_base64_is_accepted() -> None:
    text = base64.urlsafe_b64encode(orjson.dumps({**TRACK, "event": "ü?>>"})).rstrip(b"=")
    (event,) = decode_record(text, LIMIT).events
    assert event.fields["event"] == "ü?>>"


def test_access_log_record_is_an_access_log_event() -> None:
    (event,) = decode_record(orjson.dumps(ACCESS), LIMIT).events
    assert (event.kind, event.form) == (EventKind.ACCESS_LOG, InputForm.ACCESS_LOG)


# --- malformed records -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, b""], ids=["null", "empty"])
def test_empty_record_is_rejected(value: bytes | None) -> None:
    with pytest.raises(EmptyRecord):
        decode_record(value, LIMIT)


def test_oversized_record_is_rejected_naming_the_setting() -> None:
    with pytest.raises(RecordTooLarge, match="SLUICE_MAX_RECORD_BYTES"):
        decode_record(b"{" + b" " * 2000 + b"}", 1024)


@pytest.mark.parametrize(
    "value",
    [b'{"type": "track", "userId": ', b"{'single': 'quotes'}", b"\xff\xfe{}",
     b"[" * 2000 + b"]" * 2000, b"not json at all!"],
    ids=["truncated", "single-quotes", "invalid-utf8", "too-deep", "plain-text"],
)
def test_invalid_json_is_rejected(value: bytes) -> None:
    with pytest.raises(InvalidJson):
        decode_record(value, LIMIT)


@pytest.mark.parametrize(
    "value", [b"[1, 2]", b"42", b"null", b"true"], ids=["array", "number", "null", "boolean"]
)
def test_json_that_is_not_an_object_is_rejected(value: bytes) -> None:
    with pytest.raises(NotAnObject):
        decode_record(value, LIMIT)


def test_object_of_no_known_form_is_rejected_listing_its_keys() -> None:
    with pytest.raises(UnknownFormat, match="keys: color, size"):
        decode_record(orjson.dumps({"color": "red", "size": 3}), LIMIT)


def test_bad_base64_in_firehose_data_is_rejected() -> None:
    envelope = {"Record": {"Data": "!!!not base64!!!"}}
    with pytest.raises(InvalidBase64):
        decode_record(orjson.dumps(envelope), LIMIT)


def test_firehose_data_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(InvalidBase64, match="number"):
        decode_record(orjson.dumps({"Record": {"Data": 12}}), LIMIT)


def test_base64_of_non_json_is_invalid_json() -> None:
    with pytest.raises(InvalidJson, match="decodes from base64 but not to JSON"):
        decode_record(base64.b64encode(b"hello there, not json"), LIMIT)


def test_base64_of_a_json_array_is_not_an_object() -> None:
    with pytest.raises(NotAnObject):
        decode_record(_b64([1, 2, 3]), LIMIT)


def test_json_string_that_is_not_base64_is_rejected() -> None:
    with pytest.raises(InvalidBase64):
        decode_record(orjson.dumps("hello world?"), LIMIT)


@pytest.mark.parametrize("batch", [[], {"a": 1}, "events"], ids=["empty", "object", "string"])
def test_batch_that_is_not_a_non_empty_list_is_rejected(batch: object) -> None:
    with pytest.raises(InvalidBatch):
        decode_record(orjson.dumps({"batch": batch}), LIMIT)


def test_batch_with_some_bad_events_keeps_the_good_ones() -> None:
    envelope = {"batch": [TRACK, "oops", {"no": "type"}, {**TRACK, "messageId": "m-2"}, None]}
    decoded = decode_record(orjson.dumps(envelope), LIMIT)
    assert [e.batch_index for e in decoded.events] == [0, 3]
    assert [(i, type(err)) for i, err in decoded.failures] == [
        (1, NotAnObject), (2, UnknownFormat), (4, NotAnObject)
    ]


# --- Kafka Connect's JsonConverter envelope (schemas.enable=true) ------------------------------

CONNECT_SCHEMA = {"type": "struct", "optional": False, "name": "segment.Event",
                  "fields": [{"field": "type", "type": "string", "optional": False}]}


@pytest.mark.parametrize("schema", [CONNECT_SCHEMA, None], ids=["struct-schema", "null-schema"])
def test_a_kafka_connect_envelope_is_unwrapped_to_its_payload(schema: object) -> None:
    (event,) = decode_record(orjson.dumps({"schema": schema, "payload": TRACK}), LIMIT).events
    assert (event.kind, event.form, event.fields) == (
        EventKind.SEGMENT, InputForm.KAFKA_CONNECT, TRACK)
    (log,) = decode_record(orjson.dumps({"schema": schema, "payload": ACCESS}), LIMIT).events
    assert (log.kind, log.form, log.fields) == (
        EventKind.ACCESS_LOG, InputForm.KAFKA_CONNECT, ACCESS)


def test_a_kafka_connect_payload_may_be_json_text_or_base64_bytes() -> None:
    text = {"schema": {"type": "string", "optional": False},
            "payload": orjson.dumps(TRACK).decode()}
    (event,) = decode_record(orjson.dumps(text), LIMIT).events
    assert (event.form, event.fields) == (InputForm.KAFKA_CONNECT, TRACK)
    raw = {"schema": {"type": "bytes", "optional": False}, "payload": _b64(TRACK).decode()}
    (event,) = decode_record(orjson.dumps(raw), LIMIT).events
    assert (event.form, event.fields) == (InputForm.KAFKA_CONNECT, TRACK)


def test_a_kafka_connect_payload_may_be_a_batch() -> None:
    envelope = {"schema": None, "payload": {"batch": [TRACK, TRACK]}}
    decoded = decode_record(orjson.dumps(envelope), LIMIT)
    assert [e.batch_index for e in decoded.events] == [0, 1]


@pytest.mark.parametrize(("payload", "error", "match"), [
    (None, EmptyRecord, "payload is null"),
    ([TRACK], NotAnObject, "payload is JSON array"),
    ("not json", InvalidJson, "Kafka Connect payload is a string but not JSON"),
    ("[1]", NotAnObject, "string of JSON array"),
    ({"schema": None, "payload": TRACK}, UnknownFormat, "inside another envelope"),
])
def test_a_bad_kafka_connect_payload_is_named(payload, error, match) -> None:
    with pytest.raises(error, match=match):
        decode_record(orjson.dumps({"schema": None, "payload": payload}), LIMIT)


def test_an_event_with_a_payload_field_is_not_taken_for_an_envelope() -> None:
    event = {**TRACK, "payload": {"a": 1}}
    (decoded,) = decode_record(orjson.dumps(event), LIMIT).events
    assert (decoded.form, decoded.fields) == (InputForm.SEGMENT, event)
    with pytest.raises(UnknownFormat, match="keys: payload, schema"):
        decode_record(orjson.dumps({"schema": "text", "payload": TRACK}), LIMIT)
