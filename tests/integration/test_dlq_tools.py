"""`sluice dlq inspect` and `sluice dlq replay` on the real broker."""

import os
import subprocess
import sys

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from worker.config import Settings
from worker.deadletters.publisher import DeadLetterPublisher
from worker.events.records import DeadLetter, KafkaPosition, SourceRecord
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


def _sluice(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    environment.update(settings.as_environment())
    return subprocess.run([sys.executable, "-m", "worker", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


async def _source_values(settings: Settings) -> list[bytes]:
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.source_topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        for _ in range(5):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                values += [message.value for message in messages]
        return values
    finally:
        await consumer.stop()


async def test_inspect_counts_and_replay_sends_back_only_what_was_chosen(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    batch = orjson.dumps({"batch": [{"type": "track", "event": "A", "userId": "u"},
                                    {"type": "track", "userId": "u", "messageId": "fixme"}]})
    publisher = DeadLetterPublisher(settings)
    await publisher.start()
    try:
        position = KafkaPosition(settings.source_topic, 0, 7)
        await publisher.publish(DeadLetter(SourceRecord(None, b"{broken", position), "decode",
                                           "InvalidJson", "not JSON", False))
        await publisher.publish(DeadLetter(SourceRecord(None, batch, position), "elasticsearch",
                                           "SinkRejected", "mapping conflict", False,
                                           batch_index=1, event_id="fixme"))
    finally:
        await publisher.stop()

    inspected = _sluice(settings, "dlq", "inspect")
    assert inspected.returncode == 0, inspected.stderr
    assert "2 dead letters" in inspected.stdout
    assert "decode         InvalidJson" in inspected.stdout
    assert "mapping conflict" in inspected.stdout

    replayed = _sluice(settings, "dlq", "replay", "--stage", "elasticsearch")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letters" in replayed.stdout
    values = await _source_values(settings)
    assert [orjson.loads(value)["messageId"] for value in values] == ["fixme"]


async def test_inspect_and_dry_run_on_an_empty_dead_letter_topic(settings: Settings) -> None:
    await ensure_topics(settings)
    inspected = _sluice(settings, "dlq", "inspect")
    assert inspected.returncode == 0, inspected.stderr
    assert f"{settings.dead_letter_topic_name}: 0 dead letters" in inspected.stdout
    replayed = _sluice(settings, "dlq", "replay", "--dry-run")
    assert replayed.returncode == 0, replayed.stderr
    assert "would replay 0 dead letters" in replayed.stdout


async def test_reading_a_partition_range_that_ends_at_once_stops_cleanly(
    settings: Settings,
) -> None:
    # The root of the empty-topic crash: a group-less consumer stopped right after it started.
    from worker.deadletters.replay import read_dead_letters

    await ensure_topics(settings)
    assert await read_dead_letters(settings, {0: 5}, {0: 5}) == []
    assert await read_dead_letters(settings) == []


async def test_replay_refuses_a_truncated_dead_letter_unless_forced(settings: Settings) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:  # as the publisher writes a record too large for the dead-letter topic
        await producer.send_and_wait(settings.dead_letter_topic_name, b'{"type": "tra', headers=[
            ("sluice.stage", b"decode"), ("sluice.error.class", b"RecordTooLarge"),
            ("sluice.source.topic", settings.source_topic.encode()),
            ("sluice.source.partition", b"2"), ("sluice.source.offset", b"41"),
            ("sluice.value_truncated", b"true"), ("sluice.value_size", b"9000000")])
    finally:
        await producer.stop()

    refused = _sluice(settings, "dlq", "replay")
    assert refused.returncode == 1
    assert "refusing to replay: 1 of the 1" in refused.stderr and "--force" in refused.stderr
    assert f"{settings.source_topic}[2]@41" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert await _source_values(settings) == []
    forced = _sluice(settings, "dlq", "replay", "--force")
    assert forced.returncode == 0, forced.stderr
    assert await _source_values(settings) == [b'{"type": "tra']
