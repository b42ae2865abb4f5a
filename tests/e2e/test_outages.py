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
    assert_committed_records_are_written,
    assert_exactly_once,
    committed_total,
    elasticsearch_ids,
    s3_ids,
    steady_traffic,
)
from tests.support.processes import SluiceProcess, wait_for_no_lag
from tests.support.waiting import eventually
from worker.config import Settings
from worker.kafka.group_offsets import group_progress
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.e2e

# Records produced into the outage (80 a second: about 5 s of traffic the worker cannot write).
OUTAGE_RECORDS = 400


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
    """The worker reaches one server through the proxy; the books are read from the server.

    No fixed brackets: the outage starts once the group has committed something (both sinks
    wrote), lasts until the worker has been refused a few times and OUTAGE_RECORDS records were
    produced into it, and ends with the commits resuming while traffic still flows.
    """
    await ensure_topics(settings)
    produced: dict[str, int] = {}
    positions: dict[str, tuple[int, int]] = {}
    stop = asyncio.Event()
    worker = SluiceProcess(settings.model_copy(update=through_proxy), ["worker"], log)
    traffic = asyncio.create_task(steady_traffic(settings, produced, stop, per_second=80,
                                                 positions=positions))
    try:
        await asyncio.to_thread(worker.wait_for_log, r"partitions assigned: \S+\[\d", 120)
        await eventually(lambda: committed_total(settings), timeout=60,
                         what="a first commit (both sinks written) before the outage")
        proxy.outage()
        outage_started, sent_before = time.monotonic(), len(produced)
        await eventually(
            lambda: proxy.refused >= 5 and len(produced) >= sent_before + OUTAGE_RECORDS,
            timeout=60, what=f"5 refused requests and {OUTAGE_RECORDS} records into the outage")
        # Commits of what was written before the outage may land during it; nothing else may.
        # Exact, not a stretch of time without commits: every record the group committed is in
        # both sinks, read from the servers behind the proxy while the outage goes on.
        await assert_committed_records_are_written(settings, positions)
        progress = await group_progress(settings, settings.source_topic)
        # What was produced into the outage is not written, so not committed (all but perhaps
        # a few that a request under way when it began took along).
        assert sum(p.lag for p in progress) > OUTAGE_RECORDS // 2, progress
        assert worker.process.poll() is None, worker.log()[-3000:]
        during = sum(p.committed or 0 for p in progress)
        proxy.restore()
        restored, outage = time.monotonic(), time.monotonic() - outage_started
        await eventually(lambda: _committed_past(settings, during), timeout=60,
                         what="commits to resume after the restore, under traffic")
        stop.set()
        await traffic
        await wait_for_no_lag(settings, worker, timeout=120)
        print(f"outage of {outage:.1f}s ({proxy.refused} requests refused): caught up "
              f"{time.monotonic() - restored:.1f}s after the restore, {len(produced)} events")
    finally:
        stop.set()
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    assert proxy.requests > 0
    assert_exactly_once(set(produced), await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once(set(produced), await s3_ids(settings), "S3")


async def _committed_past(settings: Settings, total: int) -> bool:
    return await committed_total(settings) > total


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
