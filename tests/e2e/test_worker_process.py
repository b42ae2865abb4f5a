import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.group_offsets import group_progress
from worker.local.produce import produce, synthetic_records
from worker.local.samples import SAMPLE_FORMS

pytestmark = pytest.mark.e2e


async def test_worker_joins_the_group_logs_its_assignment_and_commits(
    settings: Settings, tmp_path: Path
) -> None:
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        worker.wait_for_log(rf"partitions assigned: {settings.source_topic}\[0,1,2,3\]")
        await produce(settings, synthetic_records(120, SAMPLE_FORMS, 0.0, 1_048_576, seed=1))
        await wait_for_no_lag(settings, worker, timeout=60)
        progress = await group_progress(settings, settings.source_topic)
        assert sum(p.end_offset for p in progress) == 120
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.log()[-2000:]


def test_worker_with_a_bad_setting_exits_at_once_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "worker"],
        env={"SLUICE_TOPIC_PARTITIONS": "many", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "SLUICE_TOPIC_PARTITIONS='many'" in result.stderr
