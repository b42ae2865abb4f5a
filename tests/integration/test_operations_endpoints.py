"""/metrics and /health of worker processes on the real broker."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import SluiceProcess
from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _samples(port: int) -> dict[tuple[str, tuple], float]:
    status, body = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_metrics_move_and_readiness_needs_an_assignment(
    settings: Settings, tmp_path: Path
) -> None:
    # One partition, two workers: only one can be assigned, so only one may be ready.
    settings = settings.model_copy(update={"topic_partitions": 1, "commit_interval": 0.5})
    await ensure_topics(settings)
    first_port, second_port = _free_port(), _free_port()
    first = SluiceProcess(settings.model_copy(update={"web_port": first_port}), ["worker"],
                          tmp_path / "first.log")
    try:
        _wait_for(lambda: _get(f"http://127.0.0.1:{first_port}/health/live")[0] == 200,
                  what="the first worker's liveness")
        first.wait_for_log(r"partitions assigned: \S+\[0\]")
        _wait_for(lambda: _get(f"http://127.0.0.1:{first_port}/health/ready")[0] == 200,
                  what="the first worker's readiness")
        second = SluiceProcess(settings.model_copy(update={"web_port": second_port}), ["worker"],
                               tmp_path / "second.log")
        try:
            _wait_for(lambda: _get(f"http://127.0.0.1:{second_port}/health/live")[0] == 200,
                      what="the second worker's liveness")
            second.wait_for_log(r"partitions assigned: \S+\[\] \(none\)")
            status, body = _get(f"http://127.0.0.1:{second_port}/health/ready")
            assert status == 503
            assert "assignment" in orjson.loads(body)["problems"]
        finally:
            assert second.stop() == 0
        # The group settles again: assigned at start, when the second joined, when it left.
        _wait_for(lambda: first.log().count("partitions assigned: ") >= 3, 90.0,
                  "the first worker's third assignment")

        before = _samples(first_port)
        assert before[("sluice_records_consumed_total", ())] == 0
        producer = AIOKafkaProducer(**client_options(settings))
        await producer.start()
        try:
            for index in range(40):
                event = {"type": "track", "event": "E", "userId": "u", "messageId": f"m{index}"}
                await producer.send_and_wait(settings.source_topic, orjson.dumps(event))
            await producer.send_and_wait(settings.source_topic, b"{not json")
        finally:
            await producer.stop()

        def delivered() -> bool:
            return _samples(first_port).get(
                ("sluice_events_delivered_total", (("sink", "counting"),)), 0) == 40

        await asyncio.to_thread(_wait_for, delivered, 60.0, "40 delivered events")
        after = _samples(first_port)
        assert after[("sluice_records_consumed_total", ())] == 41
        assert after[("sluice_dead_letters_total",
                      (("error_class", "InvalidJson"), ("stage", "decode")))] == 1
        lag_key = ("sluice_consumer_lag", (("partition", "0"), ("topic", settings.source_topic)))
        await asyncio.to_thread(_wait_for, lambda: _samples(first_port).get(lag_key) == 0,
                                30.0, "lag 0")
    finally:
        assert first.stop() == 0, first.log()[-3000:]
