"""Documents as the worker makes them, for tests that check a schema against the document model
(the Parquet schema, the Elasticsearch template, the Athena tables)."""

from __future__ import annotations

from typing import Any

import orjson

from tests.support.cloudwatch import gzipped, subscription_record
from worker.catalog.enrichment import enrich
from worker.catalog.entries import CatalogEntry
from worker.events import ingest_headers
from worker.events.decoding import EventKind, InputForm, RawEvent, decode_record
from worker.events.ingest_headers import apply_ingest_meta, ingest_meta
from worker.events.normalize import normalize
from worker.events.records import KafkaPosition, SourceRecord
from worker.local.samples import DEMO_CATALOG, SAMPLE_FORMS, SampleTraffic

KAFKA_MS = 1_795_000_000_000
RECORD = SourceRecord(None, b"{}", KafkaPosition("events", 3, 17), KAFKA_MS)
HEADERS = (("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
           ("x-digest", b"\xde\xad\xbe\xef"))


def sample_documents(count_per_form: int = 30) -> list[dict[str, Any]]:
    """Enriched documents of the sample traffic, `count_per_form` of every input form."""
    catalog = {entry["api_key_id"]: CatalogEntry(**entry) for entry in DEMO_CATALOG}
    traffic = SampleTraffic(seed=3)
    documents = []
    for form in SAMPLE_FORMS:
        for offset in range(count_per_form):
            sample = traffic.record(form)
            record = SourceRecord(sample.key, sample.value, KafkaPosition("events", 0, offset),
                                  KAFKA_MS)
            for raw in decode_record(sample.value, 1 << 20).events:
                _, document = normalize(raw, record)
                enrich(document, catalog.get)
                documents.append(document)
    return documents


def _through_ingest(value: bytes, headers: tuple[tuple[str, bytes], ...]) -> list[dict[str, Any]]:
    """The documents of a record `sluice ingest` produced (its `ingest.*` headers applied)."""
    record = SourceRecord(None, value, KafkaPosition("events", 3, 18), KAFKA_MS, headers)
    decoded = decode_record(value, 1 << 20)
    meta = ingest_meta(headers)
    assert meta is not None
    apply_ingest_meta(decoded, meta)
    return [normalize(raw, record)[1] for raw in decoded.events]


def every_field_document() -> dict[str, Any]:
    """A Segment event, an access log, a tracking-API event and a CloudWatch Logs event through
    Firehose, each with every optional field, merged (with the record's headers)."""
    record = SourceRecord(None, b"{}", KafkaPosition("events", 3, 17), KAFKA_MS, HEADERS)
    _, segment = normalize(RawEvent(EventKind.SEGMENT, InputForm.SEGMENT, {
        "type": "group", "userId": 42, "anonymousId": "a", "groupId": "g", "previousId": "p",
        "name": "n", "event": "e", "messageId": "m", "timestamp": "2026-11-22T20:31:04.123Z",
        "sentAt": "2026-11-22T20:31:05Z", "receivedAt": "2026-11-22T20:31:06Z",
        "context": {"source": {"id": "src"}}, "properties": {"a": 1}, "traits": {"b": [1, 2]},
        "integrations": {"All": True}}), record)
    _, access = normalize(RawEvent(EventKind.ACCESS_LOG, InputForm.ACCESS_LOG, {
        "requestId": "r", "ip": "1.2.3.4", "httpMethod": "GET", "resourcePath": "/v1",
        "path": "/v1/x", "protocol": "HTTP/1.1", "status": "200", "responseLength": 12,
        "apiId": "api", "stage": "prod", "identity": {"apiKeyId": "key-acme"},
        "userAgent": "curl", "requestTimeEpoch": 1_795_000_000}), record)
    enrich(access, {"key-acme": CatalogEntry(**DEMO_CATALOG[0], api_key_name="k")}.get)
    (tracked,) = _through_ingest(orjson.dumps({
        "type": "track", "event": "e", "userId": "u", "messageId": "t1",
        "originalTimestamp": "2026-11-22T20:31:00Z", "sentAt": "2026-11-22T20:31:05Z"}), (
        (ingest_headers.RECEIVED_AT, b"2026-11-22T20:31:06.000Z"),
        (ingest_headers.CLIENT_IP, b"198.51.100.7"), (ingest_headers.SOURCE_ID, b"src-web"),
        (ingest_headers.SOURCE_NAME, b"Web")))
    (logged, *_) = _through_ingest(gzipped(subscription_record(["not an access log"])), (
        (ingest_headers.FIREHOSE_SOURCE_ARN, b"arn:aws:firehose:eu-west-1:1:deliverystream/s"),
        (ingest_headers.FIREHOSE_ATTRIBUTES, b'{"commonAttributes": {"team": "api"}}')))
    return {**logged, **tracked, **access, **segment}
