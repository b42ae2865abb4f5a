"""The typed pass answers only with the general path's own document: for the benchmark's events,
the hostile corpus and generated variations of every field, both paths are run on each event
and must agree, key order and bytes included (or the typed pass must step aside)."""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson
import pytest

from bench.events import bench_events
from tests.support.cloudwatch import gzipped, subscription_record
from worker.events import json_codec
from worker.events.decoding import decode_record
from worker.events.errors import DecodeError, InvalidTimestamp
from worker.events.field_values import (
    EPOCH_MILLIS_THRESHOLD,
    format_timestamp,
    optional_timestamp,
    parse_timestamp,
)
from worker.events.ingest_headers import (
    CLIENT_IP,
    FIREHOSE_ATTRIBUTES,
    RECEIVED_AT,
    SOURCE_ID,
    apply_ingest_meta,
    ingest_meta,
)
from worker.events.normalize import general_document, normalize
from worker.events.records import REPLAY_EVENT_ID_HEADER, KafkaPosition, SourceRecord
from worker.events.typed_forms import GENERAL, timestamp_text, typed_document
from worker.local.samples import SAMPLE_FORMS, SampleTraffic, malformed_records

LIMIT = 1 << 20
KAFKA_MS = 1_795_000_000_000
TRACK = {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m-1",
         "timestamp": "2026-11-22T20:31:04.123Z", "context": {"ip": "1.2.3.4"}}
ACCESS = {"requestId": "r-1", "httpMethod": "GET", "status": 200, "requestTimeEpoch":
          1_795_000_000_123, "identity": {"apiKeyId": "key-1"}, "apiId": "api"}


def _record(value: bytes, timestamp_ms: int | None = KAFKA_MS,
            headers: tuple[tuple[str, bytes], ...] = ()) -> SourceRecord:
    return SourceRecord(b"k", value, KafkaPosition("events", 1, 7), timestamp_ms, headers)


def _agree(record: SourceRecord) -> tuple[int, int]:
    """Run both paths on every event of `record`; (events the typed pass took, events it left
    to the general path)."""
    try:
        decoded = decode_record(record.value, LIMIT)
    except DecodeError:
        return 0, 0  # no event: neither normaliser sees the record
    meta = ingest_meta(record.headers) if record.headers else None
    if meta is not None:
        apply_ingest_meta(decoded, meta)
    taken = left = 0
    for raw in decoded.events:
        typed = typed_document(raw, record)
        try:
            expected: Any = general_document(raw, record)
        except Exception as error:  # noqa: BLE001 (any fault: the typed pass must step aside)
            expected = error
        if typed is None:
            left += 1
            continue
        assert not isinstance(expected, Exception), (raw.fields, expected)
        assert typed == expected, raw.fields
        assert list(typed[1]) == list(expected[1]), raw.fields  # the order reaches the bytes
        assert _encoded(typed[1]) == _encoded(expected[1])
        taken += 1
    return taken, left


def _encoded(document: dict[str, Any]) -> bytes | str:
    try:
        return json_codec.dumps(document)
    except TypeError as error:  # too deep: the pipeline dead-letters it with this message
        return str(error)


def test_every_benchmark_event_takes_the_typed_pass_and_gets_the_general_document() -> None:
    records = [_record(value) for _, value in bench_events(3000)]
    assert [_agree(record) for record in records] == [(1, 0)] * len(records)


def test_sample_traffic_of_every_form_gets_the_general_document() -> None:
    traffic = SampleTraffic(seed=5)
    taken = 0
    for form in SAMPLE_FORMS:
        for _ in range(40):
            sample = traffic.record(form)
            got, left = _agree(_record(sample.value))
            assert left == 0, form
            taken += got
    assert taken > 200


def test_normalize_adds_the_records_headers_after_either_path() -> None:
    headers = (("traceparent", b"00-4bf9-01"),)
    record = _record(orjson.dumps(TRACK), headers=headers)
    (raw,) = decode_record(record.value, LIMIT).events
    event_id, document = normalize(raw, record)
    assert typed_document(raw, record) is not None
    assert (event_id, list(document)[-1], document["headers"]) == (
        "m-1", "headers", {"traceparent": "00-4bf9-01"})


def _hostile() -> list[bytes]:
    """The malformed records of the samples, the e2e hostile corpus (tests/e2e/
    test_hostile_input.py) and the decoder's and normaliser's faulty shapes (test_decoding,
    test_json_codec, test_normalize)."""
    values = [sample.value for sample in malformed_records(nonce=3, oversize_bytes=2000)]
    deep = b'{"type":"track","event":"E","userId":"u","messageId":"m","properties":' \
        + b'{"a":' * 300 + b"{}" + b"}" * 300 + b"}"
    values += [
        deep, b"[" * 5000, b"null", b"\xef\xbb\xbf" + orjson.dumps(TRACK),
        b'{"type":"track","event":"E","userId":"u","messageId":"m","x":"\\ud800"}',
        b'{"type":"track","event":"E","userId":"u","messageId":"m","x":"\xff"}',
        b'{"type":"track","event":"E","userId":"u","messageId":"m","x":1e400}',
        b'{"type":"track","type":"page","userId":"u","messageId":"m"}',
        b'{"type":"track","event":"E","userId":"u","userId":7,"messageId":"m","messageId":"n"}',
        b'{"requestId":"r","requestId":"","status":"200"}',
        orjson.dumps({"type": "track", "event": "E", "userId": "u",
                      "timestamp": "0001-01-01T00:00:00+01:00"}),
        orjson.dumps({"requestId": "r", "status": "\u00b2"}),
        orjson.dumps("this is not base64 at all?"),
        orjson.dumps({"type": "identify", "userId": "u", "messageId": "m", "traits": "x" * 600}),
    ]
    values += [orjson.dumps({**TRACK, **change}) for change in (
        {"type": "purchase"}, {"type": 7}, {"userId": None}, {"event": ""}, {"event": "  "},
        {"properties": "cheap"}, {"context": [1]}, {"userId": {"id": 1}}, {"userId": True},
        {"timestamp": "yesterday"}, {"name": 3}, {"messageId": True}, {"messageId": 17},
    )]
    values += [orjson.dumps({**ACCESS, **change}) for change in (
        {"requestId": ""}, {"status": "OK"}, {"requestTime": "soon", "requestTimeEpoch": None},
        {"requestTime": "22/Nov/2026:20:31:04 +0100", "requestTimeEpoch": "-"},
        {"status": True}, {"responseLength": 2**63}, {"ip": 5, "sourceIp": "1.2.3.4"},
    )]
    return values


@pytest.mark.parametrize("value", _hostile(), ids=lambda value: repr(value[:40]))
def test_hostile_records_get_the_general_paths_answer(value: bytes) -> None:
    _agree(_record(value))


# --- generated variations ------------------------------------------------------------------------

SEGMENT_FIELDS = ("type", "event", "name", "userId", "anonymousId", "groupId", "previousId",
                  "messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt",
                  "context", "properties", "traits", "integrations", "projectId", "sourceId")
ACCESS_FIELDS = ("requestId", "ip", "sourceIp", "httpMethod", "resourcePath", "path", "protocol",
                 "status", "responseLength", "apiId", "stage", "userAgent", "identity",
                 "identity.apiKeyId", "apiKeyId", "requestTime", "requestTimeEpoch", "receivedAt")
VALUES: tuple[Any, ...] = (
    None, "", "-", " ", "x", "track", "page", "identify", "purchase", "ü", 0, 1, -1, 42, True,
    False, 1.5, -0.0, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, "123", " 201 ", "\u00b2",
    "-5", "0042", [], [1], {}, {"id": "s"}, {"source": {"id": "src"}}, {"source": {"id": 5}},
    {"source": "x"}, {"apiKeyId": "key-9"}, {"apiKeyId": "-"},
    "2026-11-22T10:00:00Z", "2026-11-22T10:00:00.123Z", "2026-11-22T10:00:00.123456Z",
    "2026-02-30T00:00:00Z", "2026-11-22 10:00:00", "2026-11-22T10:00:00+01:00",
    "22/Nov/2026:20:31:04 +0000", "0999-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
    "2026-11-22t10:00:00z", 1_795_000_000, 1_795_000_000_123, 99_999_999_999, 100_000_000_000,
    2**33 * 1000 - 1, 2**33 * 1000, 253_402_300_800_000, "1795000000123", "0001795000000",
    "1" * 19, "-1795000000", "1795000000.5", 1795000000.5,
)
HEADERS: tuple[tuple[tuple[str, bytes], ...], ...] = (
    (), (("traceparent", b"00-4bf9-01"),),
    ((RECEIVED_AT, b"2026-11-22T20:31:06.000Z"), (CLIENT_IP, b"198.51.100.7"),
     (SOURCE_ID, b"src-web")),
    ((FIREHOSE_ATTRIBUTES, b'{"commonAttributes": {"team": "api"}}'),),
    ((REPLAY_EVENT_ID_HEADER, b"replayed-id"),),
)


def _variant(chooser: random.Random) -> dict[str, Any]:
    segment = chooser.random() < 0.6
    # Every time field set, each to another time: which one a document takes shows.
    event = dict({**TRACK, "sentAt": "2026-11-22T20:31:05Z", "originalTimestamp":
                  "2026-11-22T20:31:03.000Z"} if segment else ACCESS)
    names = SEGMENT_FIELDS if segment else ACCESS_FIELDS
    for _ in range(chooser.choice((0, 1, 1, 2, 3))):
        name = chooser.choice(names + ("writeKey", "batch", "Record", "payload"))
        if chooser.random() < 0.15:
            event.pop(name, None)
        else:
            event[name] = chooser.choice(VALUES)
    return event


def _wrapped(chooser: random.Random, event: dict[str, Any]) -> bytes:
    text = json_codec.dumps(event)
    form = chooser.choice(("plain", "plain", "plain", "batch", "firehose", "base64", "connect",
                           "cloudwatch"))
    if form == "batch":
        envelope: dict[str, Any] = {"batch": [event, {**event, "messageId": "m-2"}]}
        if chooser.random() < 0.5:
            envelope["context"] = chooser.choice(({"library": {"name": "x"}}, "ctx", None))
        if chooser.random() < 0.5:
            envelope["sentAt"] = chooser.choice(VALUES)
        return json_codec.dumps(envelope)
    if form == "firehose":
        return orjson.dumps({"Record": {"Data": base64.b64encode(text).decode()}})
    if form == "base64":
        return base64.b64encode(text)
    if form == "connect":
        return json_codec.dumps({"schema": None, "payload": event})
    if form == "cloudwatch":
        return gzipped(subscription_record([text.decode()]))
    return text


def test_generated_variations_get_the_general_paths_answer() -> None:
    chooser = random.Random(30)
    taken = left = 0
    for _ in range(6000):
        value = _wrapped(chooser, _variant(chooser))
        stamp = chooser.choice((KAFKA_MS, KAFKA_MS, None, -1, 0))
        got, gave = _agree(_record(value, stamp, chooser.choice(HEADERS)))
        taken, left = taken + got, left + gave
    # Both sides are exercised: most variations are common shapes, many are not.
    assert taken > 1500 and left > 1500, (taken, left)


# --- timestamps ----------------------------------------------------------------------------------


def _general_text(value: object) -> str | None:
    moment = parse_timestamp(value)
    return None if moment is None else format_timestamp(moment)


def test_epoch_numbers_and_digits_get_the_general_parsers_text() -> None:
    chooser = random.Random(33)
    edges = [0, 1, 59, 86_399, EPOCH_MILLIS_THRESHOLD - 1, EPOCH_MILLIS_THRESHOLD,
             EPOCH_MILLIS_THRESHOLD + 999, 2**33 * 1000 - 1, 1_795_000_000_999, 1_795_000_000_001]
    values = edges + [chooser.randrange(0, EPOCH_MILLIS_THRESHOLD) for _ in range(3000)] \
        + [chooser.randrange(EPOCH_MILLIS_THRESHOLD, 2**33 * 1000) for _ in range(20000)]
    for value in values:
        assert timestamp_text(value) == _general_text(value), value
        assert timestamp_text(str(value)) == _general_text(str(value)), value
    for value in (-1, 2**33 * 1000, 253_402_300_800_000, 10**30, True, 1.5, "1" * 19, " 1"):
        assert timestamp_text(value) is GENERAL


@pytest.mark.parametrize("text", [
    "2026-11-23T12:09:23Z", "2015-02-23T22:28:55.111Z", "9999-12-31T23:59:59.999Z",
    "1000-01-01T00:00:00.000Z", "2024-02-29T23:59:59.500Z",
])
def test_utc_iso_texts_get_the_general_text(text: str) -> None:
    assert timestamp_text(text) == optional_timestamp({"t": text}, "t") == _general_text(text)


@pytest.mark.parametrize("text", [
    "2026-02-30T00:00:00Z", "0999-01-01T00:00:00Z", "2026-11-23T24:00:00Z",
    "2026-13-01T00:00:00.000Z", "2026-11-23T12:09:23+00:00", "2026-11-23 12:09:23Z",
    "2026-11-23T12:09:23.1Z", "22/Nov/2026:20:31:04 +0000", "yesterday",
])
def test_other_texts_are_left_to_the_general_parser(text: str) -> None:
    assert timestamp_text(text) is GENERAL


@pytest.mark.parametrize("template", ["2026-12-06T17:13:07Z", "2026-12-06T17:13:07.123Z"])
def test_every_near_miss_of_a_utc_iso_text_gets_the_general_text_or_is_left_to_it(
        template: str) -> None:
    # The typed pass checks the shape by its separators and lets fromisoformat check the rest.
    chars = "0159\u0667\u00b2\uff12aWtTzZ +-:.,"  # digits, other digits, letters, separators
    near_misses = {template[:index] + char + template[index + 1:]
                   for index in range(len(template)) for char in chars}
    near_misses |= {template[:index] + template[index + 1:] for index in range(len(template))}
    near_misses |= {template[:index] + "1" + template[index:] for index in range(len(template))}
    for text in near_misses:
        got = timestamp_text(text)
        try:
            expected: object = optional_timestamp({"t": text}, "t")
        except InvalidTimestamp:
            expected = GENERAL
        assert got is GENERAL or got == expected, text


def test_a_record_without_a_kafka_timestamp_is_left_to_the_general_path() -> None:
    # received_at then comes from the worker's clock, which only the general path reads.
    (raw,) = decode_record(orjson.dumps(TRACK), LIMIT).events
    assert typed_document(raw, _record(b"", timestamp_ms=None)) is None
    assert typed_document(raw, _record(b"", timestamp_ms=-1)) is None
