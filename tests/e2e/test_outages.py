"""A destination goes away while a worker runs: commits stop, consumption resumes, 0 lost.

A fault proxy stands between the worker process and Elasticsearch (or S3) and answers 503 to
everything for a while. The group's committed offsets must not move past what both sinks have
written during the outage, and once the server is back every produced event must be in both
sinks exactly once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.ledger import (
    assert_exactly_once,
    committed_total,
    elasticsearch_ids,
    s3_ids,
    steady_traffic,
)
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 10.0


def _outage_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"],
        "commit_interval": 0.5,
        "s3_part_max_age": 1.5,
        "elasticsearch_batch_max_age": 0.3,
        "elasticsearch_retry_max": 2.0,
        "s3_retry_max": 2.0,
    })



async def _run_through_outage(settings: Settings, proxy: FaultProxy, log: Path,
                              through_proxy: dict[str, str]) -> None:
    """The worker reaches one server through the proxy; the books are read from the server."""
    await ensure_topics(settings)
    produced: dict[str, int] = {}
    stop = asyncio.Event()
    worker = SluiceProcess(settings.model_copy(update=through_proxy), ["worker"], log)
    traffic = asyncio.create_task(steady_traffic(settings, produced, stop, per_second=80))
    try:
        await asyncio.to_thread(worker.wait_for_log, r"partitions assigned: \S+\[\d", 120)
        await asyncio.sleep(4)
        proxy.outage()
        # What was written before the outage may still be committed in its first seconds.
        await asyncio.sleep(3)
        during = await committed_total(settings)
        sent_before = len(produced)
        await asyncio.sleep(OUTAGE_SECONDS - 3)
        assert await committed_total(settings) == during, "offsets were committed during the outage"
        assert len(produced) > sent_before, "the producer stalled"
        assert worker.process.poll() is None, worker.log()[-3000:]
        proxy.restore()
        restored = time.monotonic()
        await asyncio.sleep(3)
        stop.set()
        await traffic
        await wait_for_no_lag(settings, worker, timeout=120)
        print(f"outage of {OUTAGE_SECONDS:.0f}s: caught up {time.monotonic() - restored:.1f}s "
              f"after the restore, {len(produced)} events")
    finally:
        stop.set()
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert proxy.requests > 0
    assert_exactly_once(set(produced), await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once(set(produced), await s3_ids(settings), "S3")


async def test_elasticsearch_outage_pauses_commits_and_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    settings = _outage_settings(settings)
    proxy = FaultProxy(settings.elasticsearch_url).start()
    try:
        await _run_through_outage(settings, proxy, tmp_path / "worker.log",
                                  {"elasticsearch_url": proxy.url})
    finally:
        proxy.stop()


async def test_s3_outage_pauses_commits_and_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    settings = _outage_settings(settings)
    assert settings.s3_endpoint_url
    proxy = FaultProxy(settings.s3_endpoint_url, signed=True).start()
    try:
        await _run_through_outage(settings, proxy, tmp_path / "worker.log",
                                  {"s3_endpoint_url": proxy.url})
    finally:
        proxy.stop()
