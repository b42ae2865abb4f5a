from typing import Any

import pytest

from worker.events.decoding import EventKind, InputForm, RawEvent
from worker.events.errors import InvalidTimestamp, MissingField, UnknownFormat, WrongType
from worker.events.normalize import normalize, parse_timestamp
from worker.events.records import KafkaPosition, SourceRecord

RECORD = SourceRecord(
    key=None, value=b"{}", position=KafkaPosition("events", 2, 41), timestamp_ms=1_795_000_000_000
)


def _segment(**fields: Any) -> RawEvent:
    base = {"type": "track", "event": "Signed Up", "userId": "u1"}
    return RawEvent(EventKind.SEGMENT, InputForm.SEGMENT, {**base, **fields})


def _access(**fields: Any) -> RawEvent:
    base = {"requestId": "req-1"}
    return RawEvent(EventKind.ACCESS_LOG, InputForm.ACCESS_LOG, {**base, **fields})


def test_segment_track_event_gets_the_seed_001_shape() -> None:
    event_id, doc = normalize(
        _segment(
            messageId="msg-1",
            anonymousId="anon-1",
            timestamp="2026-11-22T12:30:00+01:00",
            sentAt="2026-11-22T11:30:01Z",
            receivedAt="2026-11-22T11:30:02.5Z",
            context={"ip": "1.2.3.4"},
            properties={"revenue": 3},
            projectId="src-1",
        ),
        RECORD,
    )
    assert event_id == "msg-1"
    assert doc == {
        "event_id": "msg-1",
        "type": "track",
        "event": "Signed Up",
        "anonymous_id": "anon-1",
        "user_id": "u1",
        "timestamp": "2026-11-22T11:30:00.000Z",
        "sent_at": "2026-11-22T11:30:01.000Z",
        "received_at": "2026-11-22T11:30:02.500Z",
        "context": {"ip": "1.2.3.4"},
        "properties": {"revenue": 3},
        "source_id": "src-1",
        "input_format": "segment",
        "kafka": {"topic": "events", "partition": 2, "offset": 41},
    }


def test_received_at_falls_back_to_the_kafka_timestamp() -> None:
    _, doc = normalize(_segment(), RECORD)
    assert doc["received_at"] == "2026-11-18T11:06:40.000Z"
    assert doc["timestamp"] == doc["received_at"]


def test_event_without_producer_id_gets_a_deterministic_id() -> None:
    first, _ = normalize(_segment(), RECORD)
    again, _ = normalize(_segment(), RECORD)
    elsewhere, _ = normalize(_segment(), SourceRecord(None, b"", KafkaPosition("events", 2, 42)))
    other_content, _ = normalize(_segment(event="Other"), RECORD)
    assert first == again
    assert len({first, elsewhere, other_content}) == 3


def test_numeric_user_id_is_kept_as_text() -> None:
    assert normalize(_segment(userId=42), RECORD)[1]["user_id"] == "42"


def test_identify_keeps_traits_and_has_no_event_name() -> None:
    _, doc = normalize(_segment(type="identify", traits={"plan": "pro"}), RECORD)
    assert doc["traits"] == {"plan": "pro"} and "event" not in doc


def test_access_log_gets_request_fields_and_the_api_key() -> None:
    event_id, doc = normalize(
        _access(
            requestTime="22/Nov/2026:20:31:04 +0000",
            httpMethod="POST",
            resourcePath="/v1/events",
            status="201",
            responseLength="-",
            apiId="api-9",
            stage="prod",
            identity={"apiKeyId": "key-1"},
            ip="198.51.100.4",
        ),
        RECORD,
    )
    assert event_id == "req-1"
    assert doc["type"] == "access_log"
    assert doc["timestamp"] == "2026-11-22T20:31:04.000Z"
    assert doc["status"] == 201 and "response_length" not in doc
    assert (doc["api_key_id"], doc["http_method"], doc["api_id"]) == ("key-1", "POST", "api-9")


@pytest.mark.parametrize(
    "fields",
    [{"identity.apiKeyId": "key-2"}, {"apiKeyId": "key-2"}, {"identity": {"apiKeyId": "key-2"}}],
    ids=["flattened-seed-003", "top-level", "nested"],
)
def test_api_key_id_is_found_in_every_spelling(fields: dict[str, Any]) -> None:
    assert normalize(_access(**fields), RECORD)[1]["api_key_id"] == "key-2"


def test_dash_api_key_means_no_key() -> None:
    assert "api_key_id" not in normalize(_access(apiKeyId="-"), RECORD)[1]


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (_segment(type="purchase"), UnknownFormat, "`type` is 'purchase'"),
        (_segment(type=7), WrongType, "`type` is a number"),
        (_segment(userId=None), MissingField, "`userId` or `anonymousId`"),
        (_segment(event=""), MissingField, "non-empty string `event`"),
        (_segment(properties="cheap"), WrongType, "`properties` is a string"),
        (_segment(context=[1]), WrongType, "`context` is an array"),
        (_segment(userId={"id": 1}), WrongType, "`userId` is an object"),
        (_segment(userId=True), WrongType, "`userId` is a boolean"),
        (_segment(timestamp="yesterday"), InvalidTimestamp, "`timestamp` is a string"),
        (_segment(name=3), WrongType, "`name` is a number"),
        (_access(requestId=""), MissingField, "`requestId`"),
        (_access(status="OK"), WrongType, "`status` is a string"),
        (_access(requestTime="soon"), InvalidTimestamp, "`requestTime`"),
    ],
    ids=[
        "unknown-type", "type-not-string", "no-user-or-anonymous-id", "track-without-event",
        "properties-not-object", "context-not-object", "user-id-object", "user-id-boolean",
        "unparseable-timestamp", "name-not-string", "access-log-empty-request-id",
        "access-log-status-text", "access-log-bad-request-time",
    ],
)
def test_invalid_fields_are_rejected_with_a_reason(
    raw: RawEvent, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("`", "`").replace("(", r"\(")):
        normalize(raw, RECORD)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00+00:00"),
        ("2026-11-22T10:00:00.123456-02:00", "2026-11-22T12:00:00.123456+00:00"),
        ("2026-11-22 10:00:00", "2026-11-22T10:00:00+00:00"),
        ("22/Nov/2026:20:31:04 +0100", "2026-11-22T19:31:04+00:00"),
        (1_795_000_000, "2026-11-18T11:06:40+00:00"),
        (1_795_000_000_123, "2026-11-18T11:06:40.123000+00:00"),
        ("1795000000", "2026-11-18T11:06:40+00:00"),
    ],
    ids=["iso-z", "iso-offset", "iso-naive", "clf", "epoch-s", "epoch-ms", "epoch-text"],
)
def test_timestamps_in_every_accepted_format_become_utc(value: object, expected: str) -> None:
    from datetime import UTC

    parsed = parse_timestamp(value)
    assert parsed is not None and parsed.astimezone(UTC).isoformat() == expected


@pytest.mark.parametrize("value", ["tomorrow", True, [1], 10**30], ids=str)
def test_unparseable_timestamps_are_none(value: object) -> None:
    assert parse_timestamp(value) is None


@pytest.mark.parametrize("text", [
    "2026-11-23T12:09:23Z", "2015-02-23T22:28:55.111Z", "9999-12-31T23:59:59.999Z",
    "1000-01-01T00:00:00.000Z", "2026-02-30T00:00:00Z", "0999-01-01T00:00:00Z",
    "2026-11-23T24:00:00Z", "2026-13-01T00:00:00.000Z", "2024-02-29T23:59:59.500Z",
])
def test_the_utc_iso_fast_path_gives_what_the_general_parser_gives(text: str) -> None:
    from worker.events.errors import InvalidTimestamp
    from worker.events.field_values import format_timestamp, optional_timestamp, parse_timestamp

    parsed = parse_timestamp(text)
    if parsed is None:
        with pytest.raises(InvalidTimestamp):
            optional_timestamp({"timestamp": text}, "timestamp")
    else:
        assert optional_timestamp({"timestamp": text}, "timestamp") == format_timestamp(parsed)


def test_a_replayed_event_without_producer_id_keeps_the_id_it_had_when_it_failed() -> None:
    original, _ = normalize(_segment(), RECORD)
    replayed_at = SourceRecord(None, b"{}", KafkaPosition("events", 0, 900), headers=(
        ("sluice.replayed_from", b"events.dlq/0/3"), ("sluice.replay.event_id",
                                                      original.encode())))
    replayed, document = normalize(_segment(), replayed_at)
    assert replayed == document["event_id"] == original
    # A producer id still wins; and the header names the record's one event, not a batch's.
    assert normalize(_segment(messageId="m-1"), replayed_at)[0] == "m-1"
    in_batch = RawEvent(EventKind.SEGMENT, InputForm.SEGMENT_BATCH,
                        {"type": "track", "event": "A", "userId": "u"}, batch_index=1)
    assert normalize(in_batch, replayed_at)[0] != original
