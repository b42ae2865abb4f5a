"""Growing the source topic while two workers run: nothing lost, nothing written twice."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
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
        traffic = asyncio.create_task(steady_traffic(settings, produced, stop))
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
        await wait_for_no_lag(settings, *workers)
        owned = [_last_assignment(worker, settings.source_topic) for worker in workers]
        assert all(owned), f"each worker owns partitions: {owned}"
        assert owned[0] | owned[1] == set(range(8))
    finally:
        stop.set()
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0], [worker.log()[-2000:] for worker in workers]

    assert_exactly_once(set(produced), await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once(set(produced), await s3_ids(settings), "S3")
