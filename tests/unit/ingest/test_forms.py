"""Request bodies of `sluice ingest`: which records each form yields, with which keys."""

import base64

import orjson
import pytest

from worker.ingest.errors import BadBody, TooLarge
from worker.ingest.forms import firehose_records, json_records, segment_records
from worker.ingest.keys import record_key

LIMIT = 1_048_576


def _event(user: str | None = "u1", **extra: object) -> dict:
    event = {"type": "track", "event": "Signed Up", "messageId": "m1", **extra}
    if user:
        event["userId"] = user
    return event


def test_a_single_segment_event_is_produced_unchanged_keyed_by_its_user() -> None:
    body = orjson.dumps(_event("u1"))
    [record] = segment_records(body, LIMIT)
    assert record.value == body and record.key == b"u1"


def test_a_segment_batch_becomes_one_record_per_event_with_the_envelope_in_its_headers() -> None:
    body = orjson.dumps({"batch": [_event("u1"), _event(None, anonymousId="a9")],
                         "sentAt": "2026-11-22T10:00:00Z", "context": {"library": "x"}})
    records = segment_records(body, LIMIT)
    assert [r.key for r in records] == [b"u1", b"a9"]
    assert records[0].value == orjson.dumps(_event("u1"))  # the element's own bytes
    assert dict(records[0].headers) == {"ingest.batch.context": b'{"library":"x"}',
                                        "ingest.batch.sent_at": b'"2026-11-22T10:00:00Z"'}


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "not an object"),
    (orjson.dumps({"requestId": "r", "httpMethod": "GET"}), "not a Segment event"),
    (orjson.dumps({"batch": [_event(), 3]}), r"batch\[1\]"),
    (orjson.dumps({"batch": []}), "empty list"),
])
def test_a_body_that_is_not_a_segment_event_or_batch_is_refused_with_the_reason(
        body: bytes, reason: str) -> None:
    with pytest.raises(BadBody, match=reason):
        segment_records(body, LIMIT)


def test_an_event_above_the_record_limit_is_refused_as_too_large() -> None:
    with pytest.raises(TooLarge, match="SLUICE_MAX_RECORD_BYTES"):
        segment_records(orjson.dumps(_event(properties={"x": "y" * 2000})), 1024)


def _firehose(*payloads: bytes, request_id: str = "req-1") -> bytes:
    return orjson.dumps({"requestId": request_id, "timestamp": 1,
                         "records": [{"data": base64.b64encode(p).decode()} for p in payloads]})


def test_firehose_records_are_decoded_and_keyed_by_api_key_user_or_stream() -> None:
    log_line = orjson.dumps({"requestId": "r1", "identity": {"apiKeyId": "k1"}}) + b"\n"
    delivery = firehose_records(_firehose(log_line, orjson.dumps(_event("u7")), b"garbage"),
                                "arn:stream", LIMIT)
    assert delivery.request_id == "req-1"
    assert [r.key for r in delivery.records] == [b"k1", b"u7", b"arn:stream"]
    assert delivery.records[0].value == log_line.strip()
    assert delivery.records[2].value == b"garbage"  # the worker dead-letters it with its bytes


def test_firehose_data_with_several_json_lines_becomes_one_record_per_line() -> None:
    lines = b'{"requestId": "a"}\n{"requestId": "b"}\n'
    assert len(firehose_records(_firehose(lines), None, LIMIT).records) == 2


@pytest.mark.parametrize("body, reason", [
    (b"{}", "requestId"),
    (orjson.dumps({"requestId": "r"}), "records"),
    (orjson.dumps({"requestId": "r", "records": [{"data": "%%%"}]}), r"records\[0\].data"),
    (orjson.dumps({"requestId": "r", "records": [{}]}), "missing"),
])
def test_a_body_that_is_not_a_firehose_request_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(BadBody, match=reason):
        firehose_records(body, None, LIMIT)


def test_json_ndjson_and_arrays_are_one_record_per_event() -> None:
    one, two = orjson.dumps(_event("u1")), orjson.dumps(_event("u2"))
    assert [r.value for r in json_records(one, LIMIT)] == [one]
    assert [r.key for r in json_records(one + b"\n\n" + two + b"\n", LIMIT)] == [b"u1", b"u2"]
    assert [r.key for r in json_records(b"[" + one + b"," + two + b"]", LIMIT)] == [b"u1", b"u2"]


@pytest.mark.parametrize("body, reason", [
    (b'{"type": "track"}\nnope', "line 2 is not JSON"),
    (b'{"no": "form"}', "not a Segment event"),
    (b"[]", "empty JSON array"),
    (b"42", "not an object"),
])
def test_json_that_the_worker_could_not_decode_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(BadBody, match=reason):
        json_records(body, LIMIT)


def test_keys_name_the_user_then_the_anonymous_id_then_the_fallback() -> None:
    assert record_key({"type": "track", "userId": 42}, None) == b"42"
    assert record_key({"type": "track", "anonymousId": "a"}, "f") == b"a"
    assert record_key({"type": "track"}, "f") == b"f"
    assert record_key({"requestId": "r", "apiId": "api1"}, None) == b"api1"
    assert record_key(None, None) is None


# --- exactly the bytes received --------------------------------------------------------------

BIG = b'{"type":"track","event":"Paid","userId":"u1","messageId":"m-big",' \
      b'"properties":{"cents":123456789012345678901234567890,"rate":1.50,"b":1,"a":2}}'


def test_batch_elements_are_forwarded_as_their_original_bytes() -> None:
    body = b'{"batch": [ ' + BIG + b' ,\n' + BIG.replace(b"u1", b"u2") + b'], "sentAt": "x"}'
    records = segment_records(body, LIMIT)
    # Not parsed and written again: the 30 digits, "1.50" and the key order survive.
    assert [r.value for r in records] == [BIG, BIG.replace(b"u1", b"u2")]


def test_json_array_elements_on_the_events_path_are_their_original_bytes() -> None:
    records = json_records(b"[" + BIG + b", " + BIG + b"]", LIMIT)
    assert [r.value for r in records] == [BIG, BIG]


def test_a_json_array_of_segment_events_is_one_record_per_element() -> None:
    # Segment Webhooks (Actions) with batching on send a JSON array to /segment.
    body = b"[" + BIG + b"," + orjson.dumps(_event(None, anonymousId="a9")) + b"]"
    records = segment_records(body, LIMIT)
    assert [r.key for r in records] == [b"u1", b"a9"] and records[0].value == BIG


@pytest.mark.parametrize("body, reason", [
    (b"[]", "empty JSON array"),
    (b"[" + BIG + b", 3]", "element 1"),
    (b"[" + orjson.dumps({"batch": [_event()]}) + b"]", "element 0 is a batch"),
    (b"[" + BIG + b",", "not valid JSON"),
])
def test_a_json_array_that_is_not_all_events_is_refused_whole(body: bytes, reason: str) -> None:
    with pytest.raises(BadBody, match=reason):
        segment_records(body, LIMIT)


# --- Firehose: CloudWatch Logs records and the delivery's attributes ----------------------------


def _gzip_with_a_newline_byte(record: dict) -> bytes:
    import gzip
    import json

    for pad in range(10_000):  # deterministic (mtime 0): the first whose bytes hold a newline
        data = gzip.compress(json.dumps({**record, "pad": pad}).encode(), mtime=0)
        if b"\n" in data:
            return data
    raise AssertionError("no such padding")


def test_a_cloudwatch_logs_record_is_forwarded_whole_keyed_by_its_stream() -> None:
    from tests.support.cloudwatch import documented_example

    data = _gzip_with_a_newline_byte(documented_example())  # once cut there into pieces
    delivery = firehose_records(_firehose(data, data + b""), "arn:stream", LIMIT)
    assert [r.value for r in delivery.records] == [data, data]
    assert delivery.records[0].key == b"CloudTrail/logs/111111111111_CloudTrail/logs_us-east-1"


def test_a_gzip_record_that_is_no_subscription_record_is_forwarded_whole_for_the_worker() -> None:
    import gzip

    data = gzip.compress(b"line one\nline two\n" * 50)
    delivery = firehose_records(_firehose(data), "arn:stream", LIMIT)
    assert [(r.key, r.value) for r in delivery.records] == [(b"arn:stream", data)]


def test_every_firehose_record_carries_the_stream_arn_and_common_attributes() -> None:
    from worker.ingest.forms import firehose_headers

    headers = firehose_headers("arn:aws:firehose:eu-west-1:1:deliverystream/s",
                               '{"commonAttributes": {"env": "prod"}}')
    delivery = firehose_records(_firehose(b'{"requestId": "a"}'), None, LIMIT, headers)
    assert dict(delivery.records[0].headers) == {
        "ingest.firehose.source_arn": b"arn:aws:firehose:eu-west-1:1:deliverystream/s",
        "ingest.firehose.common_attributes": b'{"commonAttributes": {"env": "prod"}}'}
    with pytest.raises(BadBody, match="Common-Attributes"):
        firehose_headers(None, "[1, 2]")
