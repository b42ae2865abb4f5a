"""Records from a client that is not aiokafka, in every compression codec Kafka defines, reach
both sinks through a `sluice worker` process, each event exactly once.

confluent-kafka (librdkafka, like kcat, Vector and most non-Java producers) compresses whole
batches; it leaves very small payloads uncompressed, so the values here are a few KB each.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.support.ledger import assert_exactly_once, elasticsearch_ids, s3_ids
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.e2e

RECORDS = 40


def _produce_with_librdkafka(settings: Settings, codec: str) -> set[str]:
    """RECORDS Segment events of about 3 KB, in batches compressed with `codec`; their ids."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "compression.type": codec, "linger.ms": 100, "acks": "all"})
    failures: list[str] = []
    ids = set()
    for n in range(RECORDS):
        event_id = uuid.uuid4().hex
        event = {"type": "track", "event": "Page Viewed", "userId": f"u{n % 7}",
                 "messageId": event_id,
                 "properties": {"note": f"record {n} " + "compressible text " * 170}}
        producer.produce(settings.source_topic, orjson.dumps(event), key=event_id.encode(),
                         on_delivery=lambda error, _: error and failures.append(str(error)))
        ids.add(event_id)
    assert producer.flush(30) == 0, "records still unsent after 30 s"
    assert not failures, failures
    return ids


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_records_of_every_codec_from_librdkafka_reach_both_sinks_once(
    settings: Settings, tmp_path: Path, codec: str
) -> None:
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "commit_interval": 0.5, "s3_part_max_age": 1.0,
        "elasticsearch_batch_max_age": 0.3})
    await ensure_topics(settings)
    produced = await asyncio.to_thread(_produce_with_librdkafka, settings, codec)
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        await wait_for_no_lag(settings, worker, timeout=90)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert "Traceback" not in worker.log(), worker.log()[-3000:]
    assert_exactly_once(produced, await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once(produced, await s3_ids(settings), "S3")
