"""A replay reaches only the sink that failed: the issue-14 scenario end to end.

`properties.price` is a number in the day's index (a template of the user's: Sluice's own maps
`properties` as `flattened`, where types cannot conflict); an event with a text price is rejected by
Elasticsearch (mapping conflict), archived by S3 and dead-lettered with stage `elasticsearch`.
After the fix (here: the worker writes to an index whose mapping takes it), `sluice dlq replay
--stage elasticsearch` must put it into Elasticsearch once and must not archive it a second time.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.es_templates import install_typed_properties_template
from tests.support.ledger import assert_exactly_once, elasticsearch_ids, s3_ids
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.deadletters.replay import read_dead_letters
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.e2e


async def _produce(settings: Settings, events: list[dict]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for event in events:  # one partition: the number is mapped before the text arrives
            await producer.send_and_wait(settings.source_topic, orjson.dumps(event), partition=0)
    finally:
        await producer.stop()


def _fixed(settings: Settings) -> Settings:
    """The fix: an index whose mapping takes a text price, under the same prefix (so the books
    count it), made by Sluice's own template as a user's would be: `event_id` a keyword there
    too, or Elasticsearch could not sort the books' search on it (tests/support/es_reads.py)."""
    return settings.model_copy(update={
        "elasticsearch_index": settings.elasticsearch_index.split("%")[0] + "fixed",
        "elasticsearch_install_template": True})


async def _run_worker(settings: Settings, log: Path) -> str:
    worker = SluiceProcess(settings, ["worker"], log)
    try:
        await wait_for_no_lag(settings, worker, timeout=90)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    return worker.log()


async def test_replay_of_an_elasticsearch_rejection_is_not_archived_twice(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "commit_interval": 0.5, "s3_part_max_age": 1.0,
        "elasticsearch_batch_max_age": 0.3})
    settings = await install_typed_properties_template(settings, "price")
    await ensure_topics(settings)
    await _produce(settings, [
        {"type": "track", "event": "Bought", "userId": "u1", "messageId": "priced",
         "properties": {"price": 10}},
        {"type": "track", "event": "Bought", "userId": "u2", "messageId": "worded",
         "properties": {"price": "ten euros"}},
    ])
    await _run_worker(settings, tmp_path / "first.log")
    (letter,) = await read_dead_letters(settings)
    assert (letter.stage, letter.headers.get("event_id")) == ("elasticsearch", "worded")
    assert await s3_ids(settings) == {"priced": 1, "worded": 1}

    replay = SluiceProcess(settings, ["dlq", "replay", "--stage", "elasticsearch"],
                           tmp_path / "replay.log")
    assert replay.process.wait(timeout=60) == 0, replay.log()
    await _run_worker(_fixed(settings), tmp_path / "second.log")

    archived = await s3_ids(settings)
    assert sum(archived.values()) == len(archived), f"archived twice: {archived}"
    assert_exactly_once({"priced", "worded"}, archived, "S3")
    assert_exactly_once({"priced", "worded"}, await elasticsearch_ids(settings), "Elasticsearch")
    assert len(await read_dead_letters(settings)) == 1  # nothing failed again


async def test_a_replayed_event_without_producer_id_keeps_its_id_in_every_sink(
    settings: Settings, tmp_path: Path
) -> None:
    # Without a messageId the id is derived from the Kafka position, which a replay changes:
    # the replayed document must get the id the archived copy has, not a new one.
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "commit_interval": 0.5, "s3_part_max_age": 1.0,
        "elasticsearch_batch_max_age": 0.3})
    settings = await install_typed_properties_template(settings, "price")
    await ensure_topics(settings)
    await _produce(settings, [
        {"type": "track", "event": "Bought", "userId": "u1", "messageId": "priced",
         "properties": {"price": 10}},
        {"type": "track", "event": "Bought", "userId": "u2", "properties": {"price": "ten"}},
    ])
    await _run_worker(settings, tmp_path / "first.log")
    (letter,) = await read_dead_letters(settings)
    derived = letter.headers["event_id"]
    assert derived != "priced"
    assert (letter.headers["worker.group"], bool(letter.headers["worker.host"])) == (
        settings.app_id, True)
    assert await s3_ids(settings) == {"priced": 1, derived: 1}

    replay = SluiceProcess(settings, ["dlq", "replay", "--stage", "elasticsearch"],
                           tmp_path / "replay.log")
    assert replay.process.wait(timeout=60) == 0, replay.log()
    await _run_worker(_fixed(settings), tmp_path / "second.log")

    assert_exactly_once({"priced", derived}, await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once({"priced", derived}, await s3_ids(settings), "S3")
    assert len(await read_dead_letters(settings)) == 1  # nothing failed again
