"""What Segment's servers add to a tracking API event, applied by the decode stage."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from worker.events.decoding import decode_record
from worker.events.ingest_headers import (
    BATCH_CONTEXT,
    BATCH_SENT_AT,
    CLIENT_IP,
    FIREHOSE_ATTRIBUTES,
    FIREHOSE_SOURCE_ARN,
    RECEIVED_AT,
    SOURCE_ID,
    SOURCE_NAME,
    apply_ingest_meta,
    ingest_meta,
)
from worker.events.normalize import normalize
from worker.events.records import KafkaPosition, SourceRecord
from worker.events.tracking import corrected_timestamp

RECEIVED = "2026-11-22T12:00:10.000Z"


def _document(event: dict, headers: list[tuple[str, bytes]]) -> dict:
    value = orjson.dumps(event)
    record = SourceRecord(b"k", value, KafkaPosition("events", 0, 1), 1_795_000_000_000,
                          tuple(headers))
    decoded = decode_record(value, 1 << 20)
    meta = ingest_meta(record.headers)
    assert meta is not None
    apply_ingest_meta(decoded, meta)
    return normalize(decoded.events[0], record)[1]


def _door(**extra: bytes) -> list[tuple[str, bytes]]:
    return [(RECEIVED_AT, RECEIVED.encode()), (SOURCE_ID, b"src-web"),
            (SOURCE_NAME, b"Web shop"), (CLIENT_IP, b"203.0.113.9"), *extra.items()]


def _browser_event(**fields: object) -> dict:
    return {"type": "page", "anonymousId": "a1", "messageId": "ajs-1",
            "context": {"library": {"name": "analytics.js", "version": "next-1.84.3"},
                        "userAgent": "Mozilla/5.0"}, **fields}


def test_the_timestamp_is_corrected_for_the_devices_clock_skew() -> None:
    # The device's clock is 3 hours behind: it called at 09:00:05 and sent at 09:00:09 by its
    # clock; the server received it at 12:00:10. timestamp = receivedAt - (sentAt - original).
    document = _document(_browser_event(timestamp="2026-11-22T09:00:05.000Z",
                                        sentAt="2026-11-22T09:00:09.000Z"), _door())
    assert document["timestamp"] == "2026-11-22T12:00:06.000Z"
    assert document["original_timestamp"] == "2026-11-22T09:00:05.000Z"
    assert document["received_at"] == RECEIVED and document["sent_at"] == (
        "2026-11-22T09:00:09.000Z")


def test_received_at_is_the_doors_clock_whatever_the_event_says() -> None:
    document = _document(_browser_event(receivedAt="1999-01-01T00:00:00Z"), _door())
    assert document["received_at"] == RECEIVED and document["timestamp"] == RECEIVED


def test_without_sent_at_the_timestamp_stays_as_sent() -> None:
    document = _document(_browser_event(timestamp="2026-11-22T09:00:05Z"), _door())
    assert document["timestamp"] == "2026-11-22T09:00:05.000Z"


def test_a_batchs_sent_at_and_context_are_applied_before_the_correction() -> None:
    event = {"type": "track", "event": "Bought", "userId": "u1", "messageId": "m1",
             "timestamp": "2026-11-22T11:59:00Z", "context": {"page": {"path": "/"}}}
    document = _document(event, _door(**{
        BATCH_SENT_AT: b'"2026-11-22T11:59:30Z"',
        BATCH_CONTEXT: b'{"library": {"name": "analytics-python"}, "page": {"path": "/x"}}'}))
    assert document["timestamp"] == "2026-11-22T11:59:40.000Z"  # 12:00:10 - 30 s
    # the element's own context wins over the batch's; a server library gets no context.ip
    assert document["context"] == {"library": {"name": "analytics-python"},
                                   "page": {"path": "/"}}


def test_a_client_librarys_event_gets_the_clients_address_unless_it_has_one() -> None:
    assert _document(_browser_event(), _door())["context"]["ip"] == "203.0.113.9"
    own = _browser_event()
    own["context"]["ip"] = "198.51.100.1"
    assert _document(own, _door())["context"]["ip"] == "198.51.100.1"


def test_the_write_keys_source_names_the_document_whatever_the_event_says() -> None:
    document = _document(_browser_event(projectId="forged"), _door())
    assert (document["source_id"], document["source_name"]) == ("src-web", "Web shop")
    assert document["event_id"] == "ajs-1"  # messageId kept as sent


def test_firehose_attributes_and_source_arn_go_on_the_document() -> None:
    access_log = {"requestId": "r1", "httpMethod": "GET"}
    value = orjson.dumps(access_log)
    headers = ((FIREHOSE_SOURCE_ARN, b"arn:aws:firehose:eu-west-1:1:deliverystream/logs"),
               (FIREHOSE_ATTRIBUTES, b'{"commonAttributes": {"env": "prod"}}'))
    record = SourceRecord(None, value, KafkaPosition("events", 0, 1), 1, headers)
    decoded = decode_record(value, 1 << 20)
    apply_ingest_meta(decoded, ingest_meta(headers))  # type: ignore[arg-type]
    document = normalize(decoded.events[0], record)[1]
    assert document["firehose_source_arn"].endswith("deliverystream/logs")
    assert document["firehose_attributes"] == {"env": "prod"}


def test_records_without_the_doors_headers_are_read_as_before() -> None:
    assert ingest_meta((("traceparent", b"00-abc"),)) is None


def test_a_correction_outside_the_years_1000_to_9999_is_not_applied() -> None:
    assert corrected_timestamp(datetime(9999, 12, 1, tzinfo=UTC), datetime(1000, 1, 2, tzinfo=UTC),
                               datetime(9999, 1, 1, tzinfo=UTC)) is None
