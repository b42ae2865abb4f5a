"""`sluice demo` (what `make demo` runs) as a user meets it when something is in its way."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.support.processes import SluiceProcess
from worker.config import Settings
from worker.kafka.connection import client_options

pytestmark = pytest.mark.e2e


async def _records_in(settings: Settings, topic: str) -> int:
    """How many records a topic holds (0 if it does not exist)."""
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return 0
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_a_second_demo_while_a_worker_holds_the_port_says_who_and_produces_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    # Issue 26: the demo produced its 600 records, then its worker could not bind the ops port
    # and the demo failed with "see worker.log".
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = SluiceProcess(settings.model_copy(update={"web_host": "127.0.0.1",
                                                         "web_port": port}),
                             ["demo", "--records", "20"], tmp_path / "demo.log")
        demo.process.wait(timeout=180)
    output = demo.log()
    assert demo.process.returncode == 1, output
    assert "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if line.startswith("demo failed:")]
    assert f"port {port} on 127.0.0.1" in line and "SLUICE_WEB_PORT" in line, line
    assert f"in use by pid {os.getpid()} (" in line, line  # this test holds it
    assert await _records_in(settings, settings.source_topic) == 0
