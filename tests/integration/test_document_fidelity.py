"""What producers send, kept exactly through a worker into both sinks: integers beyond 64 bits
with their digits, the record's headers, a Kafka Connect envelope unwrapped."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.fault_proxy import FaultProxy
from tests.support.hourly import read_objects
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration

BIG = b"123456789012345678901234567890"
STAMP = b'"2026-11-22T20:31:04.000Z"'
HEADERS = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
           ("x-digest", b"\xde\xad\xbe\xef"), ("sluice.replay.count", b"1")]


async def test_digits_headers_and_envelopes_reach_both_sinks_as_sent(
    settings: Settings, tmp_path: Path
) -> None:
    # The bulk bodies are read where they leave the worker: the local ES-API server parses
    # `_source` into doubles itself (a real Elasticsearch keeps the bytes it was sent).
    proxy = FaultProxy(settings.elasticsearch_url).start()
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "s3_prefix": "logs/", "s3_part_max_age": 2.0,
        "commit_interval": 0.5, "elasticsearch_url": proxy.url})
    await ensure_topics(settings)
    big = (b'{"type":"track","event":"Big","userId":' + BIG + b',"messageId":"m-big",'
           b'"timestamp":' + STAMP + b',"properties":{"id":' + BIG + b',"neg":-' + BIG + b"}}")
    connect = (b'{"schema":null,"payload":{"type":"track","event":"Connect","userId":"u1",'
               b'"messageId":"m-connect","timestamp":' + STAMP + b"}}")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_server_list)
    await producer.start()
    try:
        await producer.send_and_wait(settings.source_topic, big, headers=HEADERS)
        await producer.send_and_wait(settings.source_topic, connect)
    finally:
        await producer.stop()
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
        await wait_for_no_lag(settings, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        proxy.stop()

    objects = await read_objects(settings, "logs/year=")
    lines = {orjson.loads(line)["event_id"]: line for body in objects.values()
             for line in gzip.decompress(body).splitlines()}
    assert set(lines) == {"m-big", "m-connect"}
    assert set(proxy.bulk_documents) == {"m-big", "m-connect"}
    for stored in (lines["m-big"], proxy.bulk_documents["m-big"]):
        assert b'"user_id":"' + BIG + b'"' in stored
        assert b'"properties":{"id":' + BIG + b',"neg":-' + BIG + b"}" in stored
        assert b'"headers":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7' \
               b'-01","x-digest":{"base64":"3q2+7w=="}}' in stored
    assert orjson.loads(lines["m-connect"])["input_format"] == "kafka_connect"
    assert b"sluice." not in lines["m-big"]
