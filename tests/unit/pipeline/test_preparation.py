"""Preparation: what a record becomes on its way to the sinks, byte for byte."""

from types import SimpleNamespace

import orjson
import pyarrow as pa

from worker.config import load_settings
from worker.events.parquet_schema import record_batch
from worker.events.records import KafkaPosition, SourceRecord
from worker.pipeline.preparation import Preparation
from worker.pipeline.progress import Progress
from worker.sinks.elasticsearch.sink import ElasticsearchSink
from worker.sinks.s3.formats.base import CsvFormat, NdjsonFormat

BIG = "123456789012345678901234567890"
KAFKA_MS = 1_795_000_000_000


def _prepare(value: bytes, **settings: object):
    configured = load_settings(sinks=["counting"], web_port=0, **settings)
    record = SourceRecord(b"k", value, KafkaPosition("events", 0, 5), KAFKA_MS)
    return Preparation(configured, {}.get, [], Progress()).prepare_batch([record])


def test_integers_beyond_64_bits_reach_every_sinks_bytes_with_their_digits() -> None:
    value = (b'{"batch":[{"type":"track","event":"Big","userId":' + BIG.encode()
             + b',"messageId":"m-big","timestamp":"2026-11-22T20:31:04.000Z","properties":'
             b'{"id":' + BIG.encode() + b',"neg":-' + BIG.encode() + b',"small":7}}]}')
    prepared = _prepare(value)
    assert prepared.failures == []
    (event,) = prepared.events
    properties = b'{"id":' + BIG.encode() + b',"neg":-' + BIG.encode() + b',"small":7}'
    # An id sent as a number is kept as its decimal text, not as 1.2345678901234568e+29.
    assert event.document["user_id"] == BIG
    assert b'"properties":' + properties in event.encoded
    outcomes = SimpleNamespace(delivered=None, failed=None)
    # Elasticsearch: the bulk body, of an index and of a data stream.
    for settings in ({}, {"elasticsearch_data_stream": True, "elasticsearch_index": "events"}):
        sink = ElasticsearchSink(outcomes, load_settings(**settings))  # type: ignore[arg-type]
        body = sink._encode(event).splitlines()[1]
        assert b'"properties":' + properties in body and b'"user_id":"' + BIG.encode() in body
    # S3: the NDJSON line, CSV cells (a number and an object), the Parquet JSON column.
    assert b'"properties":' + properties in NdjsonFormat(1).item(event)
    csv = CsvFormat(["id=properties.id", "props=properties", "user=user_id"], 1)
    assert csv.item(event) == (BIG + ',"' + properties.decode().replace('"', '""') + '",'
                               + BIG + "\n").encode()
    column = record_batch([event.document]).column("properties")
    assert column.type == pa.string() and column[0].as_py() == properties.decode()


def test_ordinary_documents_are_encoded_once_by_orjson() -> None:
    value = b'{"type":"identify","userId":42,"traits":{"n":1.5,"big":18446744073709551615}}'
    (event,) = _prepare(value).events
    assert event.encoded == orjson.dumps(event.document)
    assert event.document["traits"] == {"n": 1.5, "big": 18446744073709551615}
