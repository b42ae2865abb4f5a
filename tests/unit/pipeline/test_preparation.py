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


def _batch() -> list[SourceRecord]:
    """Records of every kind the pipeline meets: the benchmark's, every sample form, faulty and
    lenient ones, one sent again (a retry for the dedupe window), ones with a header kept in the
    documents and ones through the door (headers that change the events)."""
    from bench.events import bench_events
    from worker.events.ingest_headers import CLIENT_IP, RECEIVED_AT
    from worker.local.samples import SAMPLE_FORMS, SampleTraffic, malformed_records

    traffic = SampleTraffic(seed=9)
    values = [value for _, value in bench_events(300)]
    values += [traffic.record(form).value for form in SAMPLE_FORMS for _ in range(10)]
    values += [sample.value for sample in malformed_records(nonce=5, oversize_bytes=2000)]
    values += [b'{"requestId":"r","status":"200","responseLength":"-",'
               b'"requestTime":"22/Nov/2026:20:31:04 +0000"}', values[0]]
    traced = (("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),)
    door = ((RECEIVED_AT, b"2026-11-22T20:31:06.000Z"), (CLIENT_IP, b"198.51.100.7"))
    return ([SourceRecord(b"k", value, KafkaPosition("events", 0, offset), KAFKA_MS)
             for offset, value in enumerate(values)]
            + [SourceRecord(None, traffic.record(form).value, KafkaPosition("events", 1, offset),
                            KAFKA_MS, headers)
               for offset, (form, headers) in enumerate(
                   [("segment", traced), ("access_log", traced), ("segment", door),
                    ("segment_batch", door), ("firehose", door)])])


def _outcome(prepared) -> tuple[list, list]:
    return ([(e.event_id, e.document, list(e.document), e.encoded, e.ordinal, e.batch_index)
             for e in prepared.events],
            [(f.ordinal, f.batch_index, type(f.error).__name__, str(f.error))
             for f in prepared.failures])


def test_the_typed_pass_prepares_what_the_general_path_prepares(monkeypatch) -> None:
    from worker.events import normalize
    from worker.pipeline import preparation

    catalog = {}.get
    settings = load_settings(sinks=["counting"], web_port=0, dedupe_window=60.0)
    typed_progress, general_progress = Progress(), Progress()
    typed = Preparation(settings, catalog, [], typed_progress).prepare_batch(_batch())
    monkeypatch.setattr(preparation, "typed_record", lambda *_: None)
    monkeypatch.setattr(normalize, "typed_document", lambda *_: None)
    general = Preparation(settings, catalog, [], general_progress).prepare_batch(_batch())
    assert _outcome(typed) == _outcome(general)
    assert typed_progress.counts == general_progress.counts
    assert typed_progress.counts["duplicates"] == 1  # the retry, left out by both
    assert len(typed.events) > 300 and len(typed.failures) > 10


def test_a_retry_left_out_takes_no_ordinal() -> None:
    # Without failures a batch's ticket expects its events numbered 0 .. n-1 (pipeline.wiring):
    # a retry's copy left out by the dedupe window must leave no gap, or its share never settles.
    from bench.events import bench_events

    first, second = (value for _, value in bench_events(2))
    settings = load_settings(sinks=["counting"], web_port=0, dedupe_window=60.0)
    records = [SourceRecord(b"k", value, KafkaPosition("events", 0, offset), KAFKA_MS)
               for offset, value in enumerate([first, first, second])]
    prepared = Preparation(settings, {}.get, [], Progress()).prepare_batch(records)
    assert prepared.failures == []
    assert [event.ordinal for event in prepared.events] == [0, 1]
