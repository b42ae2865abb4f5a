"""The catalog reader on the real broker: it follows new partitions and survives its own death."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from worker.catalog.table import CatalogTable
from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


async def _write_entry(settings: Settings, key: str, partition: int) -> None:
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.catalog_topic, orjson.dumps(
            {"customer_id": f"c-{key}", "customer_name": key}), key=key.encode(),
            partition=partition)
    finally:
        await producer.stop()


async def _eventually(check, what: str) -> None:  # noqa: ANN001
    for _ in range(300):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


@pytest.fixture
def catalog_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"catalog_poll_interval": 0.2,
                                       "metadata_refresh_interval": 1.0})


async def test_partitions_added_to_the_catalog_topic_are_read(catalog_settings: Settings) -> None:
    settings = catalog_settings
    await ensure_topics(settings)
    await _write_entry(settings, "key-old", 0)
    table = CatalogTable(settings)
    await table.start()
    try:
        assert table.lookup("key-old") is not None
        admin = AIOKafkaAdminClient(**client_options(settings))
        await admin.start()
        try:
            await admin.create_partitions({settings.catalog_topic: NewPartitions(
                total_count=settings.topic_partitions + 2)})
        finally:
            await admin.close()
        await _write_entry(settings, "key-new", settings.topic_partitions + 1)
        await _eventually(lambda: table.lookup("key-new") is not None,
                          "the entry on a new partition was read")
        await _write_entry(settings, "key-later", 0)  # the old partitions kept their place
        await _eventually(lambda: table.lookup("key-later") is not None, "a later entry read")
        assert table.updates == 3
    finally:
        await table.stop()


async def test_a_dead_reader_is_reported_counted_and_restarted_without_losing_an_entry(
    catalog_settings: Settings,
) -> None:
    settings = catalog_settings
    await ensure_topics(settings)
    table = CatalogTable(settings)
    await table.start()
    apply = table._apply
    failures = iter([RuntimeError("a bug in the reader")])

    def apply_once_failing(key: bytes | None, value: bytes | None, offset: int) -> None:
        error = next(failures, None)
        if error:
            raise error
        apply(key, value, offset)

    table._apply = apply_once_failing  # type: ignore[method-assign]
    try:
        await _write_entry(settings, "key-1", 0)
        await _eventually(lambda: table.reader_failures == 1, "the failure was counted")
        assert table.problem and "RuntimeError: a bug in the reader" in table.problem
        await _eventually(lambda: table.lookup("key-1") is not None,
                          "the restarted reader applied the entry it died on")
        await _eventually(lambda: table.problem is None, "readiness recovered")
    finally:
        await table.stop()
