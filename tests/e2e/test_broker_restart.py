"""The broker restarts while workers run under traffic: consumption pauses, resumes, 0 lost.

The test owns its broker: a second local stack on free ports (the Kafka broker and the
Elasticsearch API are one process there, so both go away together), sharing only the session's
S3 server. The broker is stopped with SIGTERM, left down for a while, and started again on the
same data directory. S3 parts stay open across the restart (their records uncommitted), and the
producer keeps sending through the outage.

The producer pauses for a second before the broker stops: the local broker (noida-db 0.2.3)
loses records it acknowledged in the last milliseconds before a SIGTERM and gives their offsets
to the next records after the restart. S3's offset markers then skip the new record at a reused
offset (as any offset-based exactly-once sink would). Apache Kafka flushes its logs on a
controlled shutdown.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.ledger import (
    assert_exactly_once,
    committed_total,
    elasticsearch_ids,
    s3_ids,
    steady_traffic,
)
from tests.support.processes import SluiceProcess, wait_for_no_lag
from tests.support.waiting import eventually
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.local.stack import LocalStack

pytestmark = pytest.mark.e2e

BROKER_DOWN_SECONDS = 8.0
AFTER_RESTART_RECORDS = 300  # produced (and acknowledged) after the broker is back


async def _resumed(settings: Settings, produced: dict[str, int], acknowledged: int,
                   committed: int) -> bool:
    return len(produced) >= acknowledged and await committed_total(settings) > committed


async def test_broker_restart_under_traffic_loses_nothing(
    own_broker: tuple[LocalStack, Settings], tmp_path: Path
) -> None:
    stack, settings = own_broker
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"],
        "topic_partitions": 4,
        "commit_interval": 0.5,
        "s3_part_max_age": 12.0,
        "elasticsearch_batch_max_age": 0.3,
        "elasticsearch_retry_max": 2.0,
        "s3_retry_max": 2.0,
        "session_timeout": 10.0,
        "heartbeat_interval": 1.0,
        "rebalance_timeout": 20.0,
        "drain_timeout": 15.0,
    })
    await ensure_topics(settings)
    produced: dict[str, int] = {}
    unacknowledged: set[str] = set()
    stop, flowing = asyncio.Event(), asyncio.Event()
    flowing.set()
    workers = [SluiceProcess(settings, ["worker"], tmp_path / f"worker-{n}.log") for n in (1, 2)]
    traffic = asyncio.create_task(
        steady_traffic(settings, produced, stop, per_second=80, unacknowledged=unacknowledged,
                       flowing=flowing))
    try:
        for worker in workers:
            await asyncio.to_thread(worker.wait_for_log, r"partitions assigned: \S+\[\d", 120)
        # The first S3 parts (12 s old at most) are written, and their records committed.
        committed_before = await eventually(lambda: committed_total(settings), timeout=90,
                                            what="a first commit before the restart")
        flowing.clear()
        # Not synchronisation: the local broker loses what it acknowledged in its last
        # milliseconds before a SIGTERM (module docstring), and nothing says when it has
        # written it down; the producer is idle, and a second is far more than it needs.
        await asyncio.sleep(1)
        await asyncio.to_thread(stack.stop_server, "noida")
        flowing.set()
        await asyncio.sleep(BROKER_DOWN_SECONDS)  # the outage itself: the scenario's length
        for worker in workers:
            assert worker.process.poll() is None, worker.log()[-3000:]
        await asyncio.to_thread(stack.start_server, "noida", lambda line: None)
        restarted = time.monotonic()
        committed_after_restart = await committed_total(settings)
        acknowledged_at_restart = len(produced)
        # Traffic goes on after the restart until the producer has been acknowledged again and
        # the workers commit again: consumption resumed under traffic.
        await eventually(
            lambda: _resumed(settings, produced, acknowledged_at_restart + AFTER_RESTART_RECORDS,
                             committed_after_restart),
            timeout=120, what=f"{AFTER_RESTART_RECORDS} records acknowledged after the restart "
                              "and commits past the restart's")
        flowing_after = time.monotonic() - restarted
        stop.set()
        await traffic
        await wait_for_no_lag(settings, *workers, timeout=180)
        print(f"broker down {BROKER_DOWN_SECONDS:.0f}s: caught up "
              f"{time.monotonic() - restarted:.1f}s after the restart (traffic went on for "
              f"{flowing_after:.1f}s of it), {len(produced)} events "
              f"acknowledged, {len(unacknowledged)} sends failed; committed offsets "
              f"{committed_before} before, {committed_after_restart} right after the restart")
    finally:
        stop.set()
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0], [worker.log()[-3000:] for worker in workers]
    # The broker kept what it acknowledged, and the group's offsets.
    assert committed_after_restart >= committed_before
    assert_exactly_once(set(produced), await elasticsearch_ids(settings), "Elasticsearch",
                        unacknowledged)
    assert_exactly_once(set(produced), await s3_ids(settings), "S3", unacknowledged)
