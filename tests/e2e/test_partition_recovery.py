"""A worker's S3 claim of a partition is taken while it still owns the partition (a zombie's
take-over, an operator's mistake): the worker must not drop those records silently. It reports
the partition lost, rewinds it to its oldest unsettled record, takes it over again in S3
and archives every record once (issue 15, scenario 4, with real processes and servers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.ledger import assert_exactly_once, elasticsearch_ids, s3_ids, steady_traffic
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.sinks.s3.markers import MarkerStore
from worker.sinks.s3.naming import marker_key
from worker.sinks.s3.sink import make_client_context

pytestmark = pytest.mark.e2e


async def _steal_claim(settings: Settings, partition: int) -> None:
    """Rewrite a partition's marker as another owner (same offsets, new ETag)."""
    key = marker_key(settings.s3_prefix, settings.source_topic, partition)
    async with make_client_context(settings) as client:
        store = MarkerStore(client, settings.s3_bucket)
        marker = await store.load(key)
        await store.write(key, marker, marker.etag, "someone-else")


async def test_a_lost_claim_is_recovered_by_consuming_the_partition_again(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "commit_interval": 0.5, "s3_part_max_age": 1.0,
        "elasticsearch_batch_max_age": 0.3,
    })
    await ensure_topics(settings)
    produced: dict[str, int] = {}
    stop = asyncio.Event()
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        worker.wait_for_log(rf"partitions assigned: {settings.source_topic}\[0,1,2,3\]")
        traffic = asyncio.create_task(steady_traffic(settings, produced, stop, per_second=100))
        await asyncio.to_thread(worker.wait_for_log, r"wrote s3://\S+\+0\+", 30)
        await _steal_claim(settings, 0)
        await asyncio.to_thread(worker.wait_for_log, r"records can no longer settle", 30)
        await asyncio.to_thread(
            worker.wait_for_log,
            rf"(?s)records can no longer settle.*{settings.source_topic}\[0\]: S3 holds every "
            r"record below offset", 60)
        await asyncio.sleep(2)
        stop.set()
        await traffic
        await wait_for_no_lag(settings, worker, timeout=90)
    finally:
        stop.set()
        exit_code = worker.stop()
    assert exit_code == 0, worker.log()[-3000:]
    assert "Traceback" not in worker.log()
    assert_exactly_once(set(produced), await s3_ids(settings), "S3")
    assert_exactly_once(set(produced), await elasticsearch_ids(settings), "Elasticsearch")
