"""CloudWatch Logs subscription records, built as AWS documents them, through Firehose's HTTP
endpoint and straight on the Kafka topic: one document per log event in both sinks, the log group
and stream on each, control messages dropped, anything undecodable dead-lettered whole."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.cloudwatch import (
    control_message,
    documented_example,
    firehose_request,
    gzipped,
    subscription_record,
)
from tests.support.documents import by_id, elasticsearch_documents, s3_documents
from tests.support.ingest_traffic import ACCESS_KEY, ingest_settings
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import IngestForm, Settings, SinkName
from worker.deadletters.replay import read_dead_letters
from worker.kafka.connection import client_options

pytestmark = pytest.mark.e2e

STREAM_ARN = "arn:aws:firehose:eu-west-1:111111111111:deliverystream/api-logs"
ATTRIBUTES = {"commonAttributes": {"environment": "prod", "team": "payments"}}


def _access_logs(count: int) -> list[str]:
    """API Gateway access logs as their JSON log format writes them (one message each)."""
    return [json.dumps({"requestId": str(uuid.uuid4()), "ip": "198.51.100.7",
                        "httpMethod": "GET", "resourcePath": "/items", "status": "200",
                        "protocol": "HTTP/1.1", "responseLength": "512",
                        "requestTime": "22/Nov/2026:20:31:04 +0000", "apiId": "a1b2c3",
                        "identity": {"apiKeyId": "key-acme"}}) for _ in range(count)]


async def test_cloudwatch_logs_records_through_firehose_and_kafka(
        settings: Settings, tmp_path: Path) -> None:
    cw = ingest_settings(settings.model_copy(update={
        "sinks": [SinkName.ELASTICSEARCH, SinkName.S3], "commit_interval": 0.5,
        "s3_part_max_age": 2.0, "elasticsearch_batch_max_age": 0.3,
        "ingest_forms": [IngestForm.FIREHOSE]}))
    example = documented_example()
    through_firehose = subscription_record(_access_logs(5) + ["a plain text line"],
                                           log_stream="firehose-stream", first_id=100)
    through_kafka = subscription_record(_access_logs(4) + ["another line\nwith a newline"],
                                        log_stream="kafka-stream", first_id=200)
    broken = gzip.compress(b'{"messageType": "DATA_MESSAGE", "logEvents": [')[:-4]
    ingest = SluiceProcess(cw, ["ingest"], tmp_path / "ingest.log")
    worker = SluiceProcess(cw.model_copy(update={"web_port": 0}), ["worker"],
                           tmp_path / "worker.log")
    try:
        ingest.wait_for_log(r"ingest: producing to", 60)
        body = gzip.compress(firehose_request([gzipped(example), gzipped(through_firehose),
                                               gzipped(control_message()), broken],
                                              request_id="req-cw-1"))
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{cw.ingest_port}/firehose", data=body, headers={
                    "X-Amz-Firehose-Access-Key": ACCESS_KEY, "Content-Encoding": "gzip",
                    "X-Amz-Firehose-Request-Id": "req-cw-1",
                    "X-Amz-Firehose-Source-Arn": STREAM_ARN,
                    "X-Amz-Firehose-Common-Attributes": json.dumps(ATTRIBUTES)}) as response:
            answer = await response.json()
            assert response.status == 200 and answer["requestId"] == "req-cw-1", answer
        producer = AIOKafkaProducer(**client_options(cw), acks="all")
        await producer.start()
        try:
            for value in (gzipped(through_kafka), gzipped(control_message()), broken):
                await producer.send_and_wait(cw.source_topic, value, key=b"kafka-stream")
        finally:
            await producer.stop()
        worker.wait_for_log(r"partitions assigned: \S+\[\d", 120)
        await wait_for_no_lag(cw, worker, timeout=180)
    finally:
        codes = ingest.stop(), worker.stop()
    assert codes == (0, 0), (ingest.log()[-2000:], worker.log()[-2000:])

    def ids(record: dict) -> list[str]:
        return [json.loads(e["message"])["requestId"] if e["message"].startswith("{\"request")
                else e["id"] for e in record["logEvents"]]

    expected = {**dict.fromkeys(ids(example), "firehose"),
                **dict.fromkeys(ids(through_firehose), "firehose"),
                **dict.fromkeys(ids(through_kafka), "kafka")}
    for where, documents in (("Elasticsearch", await elasticsearch_documents(cw)),
                             ("S3", await s3_documents(cw))):
        found = by_id(documents, where)
        assert set(found) == set(expected), (where, set(found) ^ set(expected))
        for event_id, path in expected.items():
            document = found[event_id]
            assert document["input_format"] == "cloudwatch_logs"
            if path == "firehose":
                assert document["firehose_source_arn"] == STREAM_ARN
                assert document["firehose_attributes"] == ATTRIBUTES["commonAttributes"]
            else:
                assert "firehose_source_arn" not in document
        assert found[ids(example)[0]]["log_group"] == "CloudTrail/logs"
        assert found[ids(example)[0]]["message"] == example["logEvents"][0]["message"]
        access = found[ids(through_kafka)[0]]
        assert (access["type"], access["log_stream"], access["api_key_id"]) == (
            "access_log", "kafka-stream", "key-acme")
        assert found[ids(through_kafka)[-1]]["message"] == "another line\nwith a newline"
    # Undecodable: dead-lettered whole, once per path, with its bytes intact.
    letters = await read_dead_letters(cw)
    assert [letter.value for letter in letters] == [broken, broken]
    assert {letter.error_class for letter in letters} == {"InvalidCloudWatchRecord"}
