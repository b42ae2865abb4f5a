"""Growing the source topic while two workers run: nothing lost, nothing written twice."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch

from tests.e2e.processes import SluiceProcess
from worker.config import Settings
from worker.group_offsets import group_progress
from worker.sinks.s3 import make_client_context
from worker.topics import ensure_topics

pytestmark = [
    pytest.mark.e2e,
    # On the local broker (noida-db 0.2.3) the group never settles after the partition count
    # changes: both workers get UnknownMemberId on commit, are revoked, and are not assigned
    # again for minutes. That is the emulator's group coordinator, not Sluice; run this against
    # a real Kafka with SLUICE_E2E_PARTITION_GROWTH=1.
    pytest.mark.skipif(not os.environ.get("SLUICE_E2E_PARTITION_GROWTH"),
                       reason="noida-db's group coordinator does not settle after a partition "
                       "increase; set SLUICE_E2E_PARTITION_GROWTH=1 against a real Kafka"),
]


async def _steady_traffic(settings: Settings, produced: dict[str, int], stop: asyncio.Event,
                          per_second: float = 150.0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_server_list,
                                metadata_max_age_ms=1000, linger_ms=5)
    await producer.start()
    try:
        while not stop.is_set():
            event_id = uuid.uuid4().hex
            event = {"type": "track", "event": "Tick", "userId": f"u{event_id[:4]}",
                     "messageId": event_id}
            metadata = await producer.send_and_wait(
                settings.source_topic, orjson.dumps(event), key=event_id.encode())
            produced[event_id] = metadata.partition
            await asyncio.sleep(1 / per_second)
    finally:
        await producer.stop()


async def _wait_for_no_lag(settings: Settings, workers: list[SluiceProcess],
                           partitions: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    progress = []
    while time.monotonic() < deadline:
        progress = await group_progress(settings, settings.source_topic)
        if len(progress) == partitions and all(p.lag == 0 for p in progress):
            return
        for worker in workers:
            assert worker.process.poll() is None, worker.log()[-3000:]
        await asyncio.sleep(1.0)
    raise AssertionError(f"workers still lag: {progress}")


def _last_assignment(worker: SluiceProcess, topic: str) -> set[int]:
    found = re.findall(rf"partitions assigned: {re.escape(topic)}\[([0-9,]*)\]", worker.log())
    return {int(n) for n in found[-1].split(",") if n} if found else set()


async def test_source_topic_grows_from_4_to_8_partitions_under_traffic(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"],
        "metadata_refresh_interval": 2.0,
        "commit_interval": 0.5,
        "s3_part_max_age": 3.0,
        "elasticsearch_batch_max_age": 0.3,
    })
    await ensure_topics(settings)
    workers = [SluiceProcess(settings, ["worker"], tmp_path / f"worker-{n}.log") for n in (1, 2)]
    produced: dict[str, int] = {}
    stop = asyncio.Event()
    try:
        for worker in workers:
            worker.wait_for_log(rf"partitions assigned: {re.escape(settings.source_topic)}\[\d")
        traffic = asyncio.create_task(_steady_traffic(settings, produced, stop))
        await asyncio.sleep(6)
        scale = subprocess.run(  # noqa: ASYNC221 (the test waits for it on purpose)
            [sys.executable, "-m", "worker", "topics", "scale", "--partitions", "8"],
            env={**settings.as_environment(), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60)
        assert scale.returncode == 0, scale.stderr
        assert "4 -> 8 partitions" in scale.stdout
        await asyncio.sleep(15)
        stop.set()
        await traffic
        assert {partition for partition in produced.values()} == set(range(8))
        await _wait_for_no_lag(settings, workers, partitions=8)
        owned = [_last_assignment(worker, settings.source_topic) for worker in workers]
        assert all(owned), f"each worker owns partitions: {owned}"
        assert owned[0] | owned[1] == set(range(8))
    finally:
        stop.set()
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0], [worker.log()[-2000:] for worker in workers]

    es = AsyncElasticsearch(settings.elasticsearch_url)
    try:
        pattern = settings.elasticsearch_index.split("%")[0] + "*"
        await es.indices.refresh(index=pattern)
        hits = (await es.search(index=pattern, size=10_000, source=False))["hits"]["hits"]
    finally:
        await es.close()
    es_ids = [hit["_id"] for hit in hits]
    assert len(es_ids) == len(set(es_ids)) and set(es_ids) == set(produced)

    s3_ids: list[str] = []
    async with make_client_context(settings) as client:
        listing = await client.list_objects_v2(Bucket=settings.s3_bucket, Prefix="year=")
        for item in listing.get("Contents", []):
            response = await client.get_object(Bucket=settings.s3_bucket, Key=item["Key"])
            async with response["Body"] as body:
                lines = gzip.decompress(await body.read()).splitlines()
            s3_ids += [orjson.loads(line)["event_id"] for line in lines]
    assert len(s3_ids) == len(set(s3_ids)), "an event was written to S3 twice"
    assert set(s3_ids) == set(produced)
