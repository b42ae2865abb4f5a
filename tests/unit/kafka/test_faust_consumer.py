"""The worker's consumer reads read_committed: records of a transaction that `sluice ingest`
aborted (a request it answered 503) are never delivered. Pinned against Faust and aiokafka."""

from __future__ import annotations

import inspect
from typing import Any

import faust
from aiokafka.consumer.consumer import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as aiokafka_driver

from worker.kafka.faust_consumer import SluiceConsumerThread, SluiceTransport


class _App(faust.App):
    def _new_transport(self) -> Any:
        return SluiceTransport(self.conf.broker_consumer, self)


async def test_the_workers_consumer_reads_read_committed() -> None:
    app = _App("t-read-committed", broker="kafka://127.0.0.1:1", store="memory://",
               web_enabled=False)
    thread = app.consumer._thread
    assert isinstance(thread, SluiceConsumerThread)
    consumer = thread._create_worker_consumer(app.consumer.transport)
    try:
        assert consumer._isolation_level == "read_committed"
    finally:
        await consumer.stop()  # never started: closes its client


def test_faust_and_aiokafka_build_the_fetcher_from_the_overridden_level() -> None:
    # Faust builds the worker's consumer in _create_worker_consumer(transport), with
    # read_uncommitted unless in its own exactly-once mode; aiokafka hands the attribute set
    # here to the Fetcher when the consumer starts.
    create = aiokafka_driver.AIOKafkaConsumerThread._create_worker_consumer
    assert list(inspect.signature(create).parameters) == ["self", "transport"]
    assert "isolation_level=isolation_level" in inspect.getsource(create)
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)
