"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import free_port
from worker.config import Settings
from worker.local.stack import LocalStack


@pytest.fixture
def own_broker(settings: Settings, tmp_path: Path) -> Iterator[tuple[LocalStack, Settings]]:
    """A broker (and Elasticsearch API) of this test's own; S3 is the session's server."""
    kafka_port, es_port = free_port(), free_port()
    own = settings.model_copy(update={
        "stack_dir": tmp_path / "own-stack",
        "kafka_bootstrap_servers": f"127.0.0.1:{kafka_port}",
        "elasticsearch_url": f"http://127.0.0.1:{es_port}",
    })
    stack = LocalStack(own)
    stack.up(log=lambda line: None)
    try:
        yield stack, own
    finally:
        stack.down(log=lambda line: None)  # leaves the session's S3 server alone: not ours
