"""Workers that come and go under steady traffic: nothing lost, nothing written twice.

Two runs of real `sluice worker` processes against the local stack, both checked the same way
at the end: the set of event ids in Elasticsearch and in S3 each equals the set produced, with
no id twice (Elasticsearch by `_id`, S3 by reading every part object).

* scale out and in: one worker on a 6-partition topic, two more join while events flow, one
  leaves gracefully (SIGTERM); every worker logs its assignment;
* SIGKILL chaos: three workers, and a loop that kills a random one at a random moment and
  restarts it under the same name (static membership, as a StatefulSet does), several times.

`SLUICE_E2E_LONG=1` runs the chaos harder (more kills, more traffic); `SLUICE_E2E_SEED` replays
one run's choices.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from pathlib import Path

import pytest

from tests.support.ledger import (
    assert_exactly_once,
    elasticsearch_ids,
    s3_ids,
    steady_traffic,
)
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.e2e

LONG = bool(os.environ.get("SLUICE_E2E_LONG"))
KILLS = 12 if LONG else 4
PER_SECOND = 200.0 if LONG else 120.0
# The local broker never expires a member that was SIGKILLed once the group rebalances (it can
# even stay the group's leader), so there the chaos workers use static membership and come back
# under their old names. On Apache Kafka, SLUICE_E2E_DYNAMIC_MEMBERS=1 kills dynamic members.
STATIC_MEMBERS = not os.environ.get("SLUICE_E2E_DYNAMIC_MEMBERS")


def _chaos_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"],
        "topic_partitions": 6,
        "commit_interval": 0.5,
        "s3_part_max_age": 2.0,
        "elasticsearch_batch_max_age": 0.3,
        "drain_timeout": 15.0,
        # A killed worker's partitions wait this long before the group moves them.
        "session_timeout": 10.0,
        "heartbeat_interval": 1.0,
        # The local broker waits this long for a killed member in a rebalance.
        "rebalance_timeout": 20.0,
    })


def _worker(settings: Settings, slot: int, log: Path, static: bool = False) -> SluiceProcess:
    if static:
        # As a StatefulSet runs them: a killed worker comes back under its old name and takes
        # its old place in the group at once.
        settings = settings.model_copy(update={"group_instance_id": f"worker-{slot}"})
    return SluiceProcess(settings, ["worker"], log)


async def _assignment_logged(worker: SluiceProcess, topic: str) -> None:
    # In a thread: the producer task keeps sending meanwhile.
    await asyncio.to_thread(worker.wait_for_log,
                            rf"partitions assigned: {re.escape(topic)}\[[0-9,]*\]", 120)


async def _check_books(settings: Settings, produced: dict[str, int]) -> None:
    assert produced, "the producer sent nothing"
    assert_exactly_once(set(produced), await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once(set(produced), await s3_ids(settings), "S3")


async def test_scale_out_and_in_under_traffic(settings: Settings, tmp_path: Path) -> None:
    settings = _chaos_settings(settings)
    await ensure_topics(settings)
    produced: dict[str, int] = {}
    stop = asyncio.Event()
    workers = [_worker(settings, 0, tmp_path / "worker-0.log")]
    traffic = asyncio.create_task(steady_traffic(settings, produced, stop, PER_SECOND))
    try:
        await _assignment_logged(workers[0], settings.source_topic)
        await asyncio.sleep(4)
        workers += [_worker(settings, n, tmp_path / f"worker-{n}.log") for n in (1, 2)]
        for worker in workers[1:]:
            await _assignment_logged(worker, settings.source_topic)
        await asyncio.sleep(6)
        assert await asyncio.to_thread(workers[1].stop) == 0, workers[1].log()[-3000:]
        await asyncio.sleep(6)
        stop.set()
        await traffic
        running = [workers[0], workers[2]]
        await wait_for_no_lag(settings, *running, timeout=240)
    finally:
        stop.set()
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0, 0], [worker.log()[-2000:] for worker in workers]
    await _check_books(settings, produced)


@pytest.mark.timeout(900 if LONG else 420)
async def test_sigkill_chaos(settings: Settings, tmp_path: Path) -> None:
    settings = _chaos_settings(settings)
    await ensure_topics(settings)
    seed = int(os.environ.get("SLUICE_E2E_SEED") or random.randrange(1_000_000))
    chooser = random.Random(seed)
    produced: dict[str, int] = {}
    stop = asyncio.Event()
    starts = 0

    def start_worker(slot: int) -> SluiceProcess:
        nonlocal starts
        starts += 1
        return _worker(settings, slot, tmp_path / f"worker-{slot}-start-{starts}.log",
                       static=STATIC_MEMBERS)

    workers = [start_worker(slot) for slot in range(3)]
    traffic = asyncio.create_task(steady_traffic(settings, produced, stop, PER_SECOND))
    kills: list[str] = []
    try:
        for worker in workers:
            await _assignment_logged(worker, settings.source_topic)
        for _ in range(KILLS):
            await asyncio.sleep(chooser.uniform(2.0, 8.0))
            victim = chooser.randrange(len(workers))
            workers[victim].process.kill()
            workers[victim].process.wait()
            kills.append(f"worker {victim} after {len(produced)} events")
            await asyncio.sleep(chooser.uniform(0.5, 4.0))
            workers[victim] = start_worker(victim)
        await asyncio.sleep(3)
        stop.set()
        await traffic
        await wait_for_no_lag(settings, *workers, timeout=300)
    except BaseException as error:
        error.add_note(f"chaos seed {seed} (SLUICE_E2E_SEED), kills: {kills}")
        raise
    finally:
        stop.set()
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0, 0], [worker.log()[-2000:] for worker in workers]
    assert len(kills) == KILLS
    await _check_books(settings, produced)
    print(f"chaos: seed {seed}, {len(produced)} events, {len(kills)} SIGKILLs, 0 lost, "
          "0 duplicated in Elasticsearch or S3")
