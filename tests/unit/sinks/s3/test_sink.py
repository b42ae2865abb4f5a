"""The S3 sink's life cycle as the readiness probe sees it."""

from __future__ import annotations

from pathlib import Path

from worker.config import load_settings
from worker.sinks.base import NOT_STARTED
from worker.sinks.s3.sink import S3Sink


async def test_the_readiness_check_before_start_answers_not_started(tmp_path: Path) -> None:
    # A probe may come before the client exists (issue 26: an AttributeError, a 500).
    sink = S3Sink(None, load_settings(state_dir=tmp_path))  # type: ignore[arg-type]
    assert await sink.check() == NOT_STARTED
