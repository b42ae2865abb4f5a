"""Fixtures of the integration suites."""

from __future__ import annotations

import pytest

from worker.config import Settings


@pytest.fixture
def s3_settings(settings: Settings) -> Settings:
    """Settings for S3 sink tests: hive layout under `logs/`, short ages and retries."""
    return settings.model_copy(update={
        "sinks": ["s3"],
        "s3_time_field": "timestamp",
        "s3_prefix": "logs/",
        "s3_part_max_age": 2.0,
        "s3_hour_close_grace": 0.0,
        "s3_retry_initial": 0.1,
        "s3_retry_max": 1.0,
        "commit_interval": 0.5,
    })
