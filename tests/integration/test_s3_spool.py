"""The S3 sink's spool directory on the real S3 server: a killed worker's is removed at start."""

import os
from pathlib import Path

import pytest

from worker.config import Settings
from worker.sinks.s3.sink import S3Sink, preflight
from worker.sinks.s3.spool import LOCK_NAME

pytestmark = pytest.mark.integration


async def test_a_starting_sink_removes_the_spool_of_a_killed_worker(
    s3_settings: Settings,
) -> None:
    await preflight(s3_settings)
    spool_root: Path = s3_settings.state_dir / "s3-spool"
    killed = spool_root / "killed-worker"
    killed.mkdir(parents=True)
    (killed / LOCK_NAME).touch()
    (killed / "events+0+1.ndjson.gz").write_bytes(b"\x1f\x8b" + b"0" * 65536)
    listener = type("Listener", (), {"delivered": lambda *a: None, "failed": None,
                                     "lost": lambda *a: None})()
    sink = S3Sink(listener, s3_settings)  # type: ignore[arg-type]
    await sink.start()
    try:
        assert os.listdir(spool_root) == [sink._spool_dir.name]
    finally:
        await sink.stop()
    assert os.listdir(spool_root) == []
