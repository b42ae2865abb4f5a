"""CloudWatch Logs subscription records on the topic: one event per log event, never split."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.support.cloudwatch import (
    control_message,
    documented_example,
    gzipped,
    subscription_record,
)
from worker.events.cloudwatch import InvalidCloudWatchRecord, gunzip
from worker.events.decoding import EventKind, InputForm, decode_record
from worker.events.errors import DecodeError, RecordTooLarge
from worker.events.normalize import normalize
from worker.events.records import KafkaPosition, SourceRecord

LIMIT = 1 << 20
ACCESS_LOG = {"requestId": "r-1", "httpMethod": "GET", "status": 200, "apiId": "api",
              "identity": {"apiKeyId": "key-acme"}, "requestTimeEpoch": 1_795_000_000}


def _documents(value: bytes) -> list[dict]:
    record = SourceRecord(b"k", value, KafkaPosition("events", 0, 7), 1_795_000_000_000)
    return [normalize(raw, record)[1] for raw in decode_record(value, LIMIT).events]


def test_the_documented_example_becomes_one_raw_log_event_per_log_event() -> None:
    example = documented_example()
    documents = _documents(gzipped(example))
    assert [d["event_id"] for d in documents] == [e["id"] for e in example["logEvents"]]
    first = documents[0]
    assert first["type"] == "log" and first["input_format"] == "cloudwatch_logs"
    assert first["message"] == example["logEvents"][0]["message"]  # the text, as logged
    assert first["timestamp"] == "2015-05-28T15:27:35.000Z"  # 1432826855000
    assert (first["log_group"], first["log_stream"]) == (
        "CloudTrail/logs", "111111111111_CloudTrail/logs_us-east-1")
    assert [d["kafka"]["batch_index"] for d in documents] == [0, 1, 2]


def test_an_access_log_message_becomes_an_access_log_with_its_log_group() -> None:
    record = subscription_record([json.dumps(ACCESS_LOG), "START RequestId: 42 plain text"])
    access, text = _documents(gzipped(record))
    assert access["type"] == "access_log" and access["event_id"] == "r-1"
    assert access["api_key_id"] == "key-acme" and access["log_group"] == record["logGroup"]
    assert text["type"] == "log" and text["message"] == "START RequestId: 42 plain text"


def test_a_control_message_yields_no_event_and_no_failure() -> None:
    decoded = decode_record(gzipped(control_message()), LIMIT)
    assert decoded.events == [] and decoded.failures == []


@pytest.mark.parametrize("value, reason", [
    (gzip.compress(b"not json at all\n{}\n"), "does not hold JSON"),
    (gzip.compress(b'{"messageType": "OTHER"}'), "not a CloudWatch Logs subscription record"),
    (gzip.compress(b'{"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1"}]}'),
     "string `message`"),
    (gzip.compress(b'{"a": 1}')[:-6], "truncated"),
    (b"\x1f\x8b" + b"\x00" * 30, "does not gunzip"),
])
def test_an_undecodable_gzip_record_fails_whole(value: bytes, reason: str) -> None:
    # One DecodeError for the record: the pipeline dead-letters its bytes intact.
    with pytest.raises(DecodeError, match=reason):
        decode_record(value, LIMIT)


def test_a_gzip_bomb_is_refused_past_the_expansion_limit() -> None:
    bomb = gzip.compress(b" " * (4 << 20))
    with pytest.raises(RecordTooLarge):
        decode_record(bomb, 64 * 1024)  # 16 x 64 KiB = 1 MiB < 4 MiB


def test_concatenated_gzip_members_are_one_stream() -> None:
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"
    with pytest.raises(InvalidCloudWatchRecord):
        gunzip(gzip.compress(b"ab") + b"trailing garbage", 100)


def test_the_input_form_and_kind_are_named() -> None:
    [raw] = decode_record(gzipped(subscription_record(["x"])), LIMIT).events
    assert raw.form is InputForm.CLOUDWATCH_LOGS and raw.kind is EventKind.LOG
