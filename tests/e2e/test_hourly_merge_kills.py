"""A worker SIGKILLed at each step of an hourly merge, then restarted: the same objects, every
event once.

The worker kills itself at a named step (``_SLUICE_KILL_AT``, ``worker.sinks.s3.hourly``): after
the plan is committed in the marker, after the first output is uploaded (of several: a small
target size), after the first merged part is deleted, after the last one is deleted (before the
marker drops the plan). The restarted worker (same static member, so it gets the partitions
back at once) finishes the merge from the marker. Then: every output the plan named exists;
every object a reader could see at the kill is still there, byte for byte (never replaced); no
hour part is left; each produced event is in the query layout exactly once.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.support.hourly import events_over_hours, markers, produce, read_objects, wait_for_merges
from tests.support.ledger import assert_exactly_once, s3_ids
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.sinks.s3.hourly import KILL_AT_VARIABLE

pytestmark = pytest.mark.e2e

STEPS = ["merge-planned", "merge-output-uploaded", "merge-part-deleted", "merge-parts-deleted"]


def _hourly_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "sinks": ["s3"],
        "s3_time_field": "timestamp",
        "s3_prefix": "logs/",
        "s3_publish": "hourly",
        "s3_part_max_age": 2.0,
        "s3_hour_close_grace": 0.0,
        "s3_retry_initial": 0.1,
        "s3_retry_max": 1.0,
        # Many small parts per hour, and a few outputs per hour from them.
        "batch_max_records": 20,
        "s3_part_max_events": 40,
        "s3_merge_target_bytes": 3072,
        "commit_interval": 0.5,
        "session_timeout": 10.0,
        "heartbeat_interval": 1.0,
        "rebalance_timeout": 20.0,
        "drain_timeout": 15.0,
        # The restarted worker takes the killed one's place in the group at once.
        "group_instance_id": "worker-0",
    })


@pytest.mark.timeout(300)
@pytest.mark.parametrize("step", STEPS)
async def test_a_merge_killed_at_each_step_ends_with_the_same_objects(
    settings: Settings, tmp_path: Path, step: str
) -> None:
    settings = _hourly_settings(settings)
    await ensure_topics(settings)
    values, _ = events_over_hours(2000)
    await produce(settings, values)

    first = SluiceProcess(settings, ["worker"], tmp_path / "killed.log",
                          extra_environment={KILL_AT_VARIABLE: step})
    assert first.process.wait(timeout=120) == -9, first.log()[-3000:]
    seen_at_kill = await read_objects(settings, "logs/year=")
    plans = [marker["merge"] for marker in (await markers(settings)).values()
             if marker.get("merge")]
    assert len(plans) == 1, plans  # merges run one at a time; the kill left this one
    planned = [output["key"] for output in plans[0]["outputs"]]
    parts = [part for output in plans[0]["outputs"] for part in output["parts"]]
    parts_left = set(await read_objects(settings, "logs/_sluice/hour-parts/")) & set(parts)
    written = set(planned) & set(seen_at_kill)
    if step == "merge-planned":
        assert not written and parts_left == set(parts)
    elif step == "merge-output-uploaded":
        assert len(planned) > 1 and len(written) == 1 and parts_left == set(parts)
    elif step == "merge-part-deleted":
        assert written == set(planned) and len(parts_left) == len(parts) - 1
    else:
        assert written == set(planned) and not parts_left

    second = SluiceProcess(settings, ["worker"], tmp_path / "restarted.log")
    try:
        await wait_for_no_lag(settings, second, timeout=120)
        await wait_for_merges(settings)
    finally:
        code = second.stop()
    assert code == 0, second.log()[-3000:]

    final = await read_objects(settings, "logs/year=")
    assert set(planned) <= set(final)
    assert {key: final.get(key) for key in seen_at_kill} == seen_at_kill
    assert not await read_objects(settings, "logs/_sluice/hour-parts/")
    produced = {orjson.loads(value)["messageId"] for value in values}
    assert_exactly_once(produced, await s3_ids(settings), "S3")
