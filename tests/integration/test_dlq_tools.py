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
from worker.kafka.topics import ensure_topics
from worker.pipeline.wiring import Pipeline
from worker.sinks.counting import CountingSink

pytestmark = pytest.mark.integration


def _sluice(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    environment.update(settings.as_environment())
    return subprocess.run([sys.executable, "-m", "worker", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


async def _source_values(settings: Settings) -> list[bytes]:
    return [record.value for record in await _source_records(settings)]


async def _source_records(settings: Settings) -> list:
    """Every record of the source topic (aiokafka's ConsumerRecords)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_server_list, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.source_topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list = []
        for _ in range(5):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records += messages
        return records
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
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_server_list)
    await producer.start()
    try:  # as the publisher writes a record too large for the dead-letter topic
        await producer.send_and_wait(settings.dead_letter_topic_name, b'{"type": "tra', headers=[
            ("sluice.stage", b"decode"), ("sluice.error.class", b"RecordTooLarge"),
            ("sluice.source.topic", settings.source_topic.encode()),
            ("sluice.source.partition", b"2"), ("sluice.source.offset", b"41"),
            ("sluice.worker.group", settings.app_id.encode()),
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


async def test_two_groups_on_one_topic_each_replay_their_own_dead_letter_once(
    settings: Settings,
) -> None:
    """Issue 26 (5): a search group and an archive group read one source topic and share its
    dead-letter topic; both dead-letter the same broken record. Each group's replay takes its
    own letter, and each replayed record is processed by its group alone: every group gets
    the record back once (before, `dlq replay` sent both letters, and each group took both)."""
    await ensure_topics(settings)
    groups = {name: settings.model_copy(update={"app_id": f"{settings.app_id}-{name}"})
              for name in ("search", "archive")}
    position = KafkaPosition(settings.source_topic, 0, 3)
    value = b'{"type": "track", "event": "Refused", "userId": "u", "messageId": "m-3"}'
    for group_settings in groups.values():
        publisher = DeadLetterPublisher(group_settings)
        await publisher.start()
        try:
            await publisher.publish(DeadLetter(SourceRecord(None, value, position), "counting",
                                               "SinkRejected", "refused", True))
        finally:
            await publisher.stop()

    search = groups["search"]
    inspected = _sluice(search, "dlq", "inspect")
    assert inspected.returncode == 0, inspected.stderr
    assert f"1 dead letters of group {search.app_id}" in inspected.stdout
    assert f"1 of {groups['archive'].app_id}" in inspected.stdout
    replayed = _sluice(search, "dlq", "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letters" in replayed.stdout
    (record,) = await _source_records(settings)
    assert dict(record.headers)["sluice.replay.group"] == search.app_id.encode()
    # The archive group's operator replays every group's letters: each goes to its own group.
    everyone = _sluice(groups["archive"], "dlq", "replay", "--all-groups")
    assert everyone.returncode == 0, everyone.stderr
    assert "replayed 2 dead letters of every group" in everyone.stdout
    records = await _source_records(settings)
    assert sorted(dict(r.headers)["sluice.replay.group"] for r in records) == sorted(
        [search.app_id.encode(), search.app_id.encode(), groups["archive"].app_id.encode()])

    # What each group's pipeline makes of the three replayed records, as consumed: the search
    # group writes its two (its own replay, and its letter in the all-groups replay), the
    # archive group its one; neither writes or dead-letters the other's.
    class Letters:
        async def publish(self, letter: DeadLetter) -> None:
            raise AssertionError(f"dead-lettered again: {letter}")

    taken = {}
    for name, group_settings in groups.items():
        pipeline = Pipeline(group_settings, Letters(), {}.get)  # type: ignore[arg-type]
        sink = pipeline.add_sink(lambda outcomes: CountingSink(outcomes, max_age_seconds=60))
        pipeline.assign([(settings.source_topic, p) for p in range(settings.topic_partitions)])
        for r in records:
            await pipeline.submit(SourceRecord(r.key, r.value, KafkaPosition(
                r.topic, r.partition, r.offset), r.timestamp, tuple(r.headers)))
        await sink.flush()
        taken[name] = (sink.counts["track"], pipeline.progress.counts["replays_of_other_groups"])
    assert taken == {"search": (2, 1), "archive": (1, 2)}
