"""Iceberg sink workers SIGKILLed at each step of a commit, and four workers committing at once:
every event is in the table exactly once.

A worker kills itself (``_SLUICE_KILL_AT``) at its first commit: after the data files are
written (``iceberg-files-written``), after the manifests are written and before the catalog is
asked (``iceberg-commit-sent``), after the catalog accepted the snapshot and before anything
is acknowledged (``iceberg-commit-acknowledged``), right after the Kafka offsets of the commit
are committed (``offsets-committed``). A second worker of the group takes its partitions over
(the table's committed offsets decide what it writes) and a restarted one joins it.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.support.hourly import events_over_hours, produce
from tests.support.iceberg import iceberg_table, pyiceberg_ids
from tests.support.ledger import assert_exactly_once
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.sinks.iceberg.commits import KILL_AT_VARIABLE
from worker.sinks.iceberg.naming import COMMITTED_OFFSETS, decode_offsets
from worker.sinks.iceberg.offsets import summary_of

pytestmark = pytest.mark.e2e

STEPS = ["iceberg-files-written", "iceberg-commit-sent", "iceberg-commit-acknowledged",
         "offsets-committed"]


def _group_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "batch_max_records": 50,
        "session_timeout": 10.0,
        "heartbeat_interval": 1.0,
        "rebalance_timeout": 20.0,
        "drain_timeout": 15.0,
    })


def _assert_table_holds_each_record_once(settings: Settings, values: list[bytes]) -> None:
    produced = {orjson.loads(value)["messageId"] for value in values}
    assert_exactly_once(produced, pyiceberg_ids(settings), "Iceberg")
    table = iceberg_table(settings)
    offsets = decode_offsets(summary_of(table.current_snapshot())[COMMITTED_OFFSETS])
    assert sum(last + 1 for last in offsets.values()) == len(values)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("step", STEPS)
async def test_a_worker_killed_at_each_step_of_a_commit_leaves_every_event_once(
    iceberg_settings: Settings, tmp_path: Path, step: str
) -> None:
    settings = _group_settings(iceberg_settings)
    await ensure_topics(settings)
    values, _ = events_over_hours(2000)

    # Static members: the restarted worker takes the killed one's place at once (the local
    # broker's group can hang when a dead member and a new one rebalance together).
    first, second = (settings.model_copy(update={"group_instance_id": f"worker-{n}"})
                     for n in (0, 1))
    killed = SluiceProcess(first, ["worker"], tmp_path / "killed.log",
                           extra_environment={KILL_AT_VARIABLE: step})
    killed.wait_for_log(r"partitions assigned: \S+\[\d", timeout=90)
    other = SluiceProcess(second, ["worker"], tmp_path / "other.log")
    other.wait_for_log(r"partitions assigned: \S+\[\d", timeout=90)
    # Both own partitions now: the killed worker commits (and dies) with events of its own.
    await produce(settings, values)
    assert killed.process.wait(timeout=120) == -9, killed.log()[-3000:]
    restarted = SluiceProcess(first, ["worker"], tmp_path / "restarted.log")
    try:
        # Joined before the books are read: killed after its offsets were committed, the group
        # may have no lag left at once, and a worker stopped while it starts has no handler for
        # SIGTERM yet (-15 instead of a drained exit).
        restarted.wait_for_log(r"partitions assigned: ", timeout=90)
        await wait_for_no_lag(settings, other, restarted, timeout=150)
    finally:
        codes = other.stop(), restarted.stop()
    assert codes == (0, 0), other.log()[-2000:] + restarted.log()[-2000:]
    _assert_table_holds_each_record_once(settings, values)


@pytest.mark.timeout(300)
async def test_four_workers_committing_at_once_lose_no_commit_and_duplicate_nothing(
    iceberg_settings: Settings, tmp_path: Path
) -> None:
    settings = _group_settings(iceberg_settings).model_copy(update={
        "topic_partitions": 8,
        "iceberg_commit_interval": 0.5,
    })
    await ensure_topics(settings)
    values, _ = events_over_hours(8000)
    # The workers join one after another: four members joining the local broker's group at the
    # same moment can be sent an empty assignment, which aiokafka cannot decode (its group
    # coordinator then stops: seen once on a fresh clone). What this test is about, commits at
    # once, starts when the events are produced, after all four have joined.
    workers: list[SluiceProcess] = []
    try:
        for n in range(4):
            workers.append(SluiceProcess(settings, ["worker"], tmp_path / f"worker-{n}.log"))
            workers[-1].wait_for_log(r"partitions assigned", timeout=90)
        await produce(settings, values)
        await wait_for_no_lag(settings, *workers, timeout=200)
    finally:
        codes = [worker.stop() for worker in workers]
    logs = [worker.log() for worker in workers]
    assert codes == [0, 0, 0, 0], [log[-1500:] for log in logs]
    _assert_table_holds_each_record_once(settings, values)
    conflicts = sum(len(re.findall("Iceberg commit conflict", log)) for log in logs)
    commits = len(iceberg_table(settings).snapshots())
    print(f"4 workers: {commits} snapshots, {conflicts} conflicts retried")
