"""The pipeline on the real broker: a `sluice worker` process, a plain aiokafka producer, and the
counting sink's record of what it delivered.

Thousands of mixed records in all four input forms, ~5% malformed, some unknown API keys, and a
catalog update while the worker runs. Checks: every event comes out exactly once, every malformed
record is dead-lettered with its reason, catalog changes take effect, and no committed offset
ever passed a record that was not yet delivered or dead-lettered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from tests.support.processes import SluiceProcess, wait_for_no_lag
from tests.support.waiting import eventually
from worker.catalog.entries import CatalogEntry, publish_entries
from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics
from worker.local.samples import SampleTraffic, malformed_records

pytestmark = pytest.mark.integration

MAX_RECORD_BYTES = 64 * 1024


@dataclass
class Produced:
    """What the test produced, by Kafka position."""

    event_ids: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    bad: dict[tuple[int, int], str] = field(default_factory=dict)       # -> error class
    bad_in_batch: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)
    # Access-log event ids by (API key, produced after the catalog update).
    access_logs: dict[tuple[str, bool], set[str]] = field(
        default_factory=lambda: defaultdict(set))

    def all_event_ids(self) -> list[str]:
        return [event_id for ids in self.event_ids.values() for event_id in ids]


async def _produce_phase(
    producer: AIOKafkaProducer, settings: Settings, produced: Produced, count: int, seed: int,
    after_update: bool,
) -> None:
    traffic = SampleTraffic(seed=seed)
    chooser = random.Random(seed)
    sends = []
    for index in range(count):
        roll = chooser.random()
        if roll < 0.05:
            sample = chooser.choice(malformed_records(seed * 100_000 + index, 80 * 1024))
            future = await producer.send(settings.source_topic, value=sample.value)
            sends.append((future, "bad", sample.error_class, []))
        elif roll < 0.07:
            good = traffic.segment_event()
            bad = {"type": "track", "userId": "u-x", "n": index}  # track without `event`
            value = orjson.dumps({"batch": [good, bad]})
            future = await producer.send(settings.source_topic, value=value)
            sends.append((future, "partial", "MissingField", [good["messageId"]]))
        else:
            record = traffic.record(
                ("segment", "segment_batch", "firehose", "base64", "access_log")[index % 5]
            )
            fields = orjson.loads(record.value) if record.form != "base64" else None
            ids = _event_ids(record.form, record.value, fields)
            future = await producer.send(settings.source_topic, value=record.value, key=record.key)
            sends.append((future, "good", record.form, ids))
            if record.form == "access_log":
                produced.access_logs[(fields["identity"]["apiKeyId"], after_update)].update(ids)
    for future, kind, detail, ids in sends:
        metadata = await future
        position = (metadata.partition, metadata.offset)
        if kind == "bad":
            produced.bad[position] = detail
        elif kind == "partial":
            produced.event_ids[position] = ids
            produced.bad_in_batch[position] = (1, detail)
        else:
            produced.event_ids[position] = ids


def _event_ids(form: str, value: bytes, fields: dict | None) -> list[str]:
    import base64

    if form == "base64":
        return [orjson.loads(base64.b64decode(value))["messageId"]]
    if form == "firehose":
        return [orjson.loads(base64.b64decode(fields["Record"]["Data"]))["messageId"]]
    if form == "segment_batch":
        return [event["messageId"] for event in fields["batch"]]
    if form == "access_log":
        return [fields["requestId"]]
    return [fields["messageId"]]


# The customer each API key's access logs must carry, before and after the live catalog update
# (None: unknown to the catalog, delivered with `enriched: false`).
CUSTOMERS = {
    ("key-acme", False): "c-acme", ("key-globex", False): "c-globex", ("key-initech", False): None,
    ("key-acme", True): "c-acme", ("key-globex", True): None, ("key-initech", True): "c-initech",
}


async def _wait_for_catalog_update(producer: AIOKafkaProducer, settings: Settings,
                                   produced: Produced, delivered_path: Path) -> None:
    """Send an access log of key-initech and one of key-globex, round after round, until the
    worker delivers them enriched as the updated catalog says: the update has been read (both
    keys, which may sit in different partitions of the catalog topic). The probes are events
    like any other: they count in the exactly-once check."""
    traffic = SampleTraffic(seed=99)
    delivered: dict[str, tuple[bool, str | None]] = {}
    wanted = {"key-initech": (True, "c-initech"), "key-globex": (False, None)}

    def delivered_all(ids: set[str]) -> bool:
        if delivered_path.exists():
            for line in delivered_path.read_bytes().splitlines():
                fields = orjson.loads(line)
                delivered[fields["event_id"]] = (fields["enriched"], fields["customer_id"])
        return ids <= delivered.keys()

    async def probe_round() -> bool:
        probes = {}
        for api_key in wanted:
            entry = {**traffic.access_log(), "identity": {"apiKeyId": api_key}}
            metadata = await producer.send_and_wait(settings.source_topic, orjson.dumps(entry))
            produced.event_ids[(metadata.partition, metadata.offset)] = [entry["requestId"]]
            probes[api_key] = entry["requestId"]
        await eventually(lambda: delivered_all(set(probes.values())), timeout=30,
                         what=f"the probes {probes} to be delivered")
        return all(delivered[probes[key]] == wanted[key] for key in wanted)

    await eventually(probe_round, timeout=60, interval=0.5,
                     what="the catalog update to reach the worker (probes of key-initech "
                          "enriched as c-initech, of key-globex unenriched)")


async def _sample_commits(settings: Settings, samples: list, stop: asyncio.Event) -> None:
    """Every 100 ms: (time, partition, committed offset) of the worker's group."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    tps = [TopicPartition(settings.source_topic, p) for p in range(settings.topic_partitions)]
    try:
        while not stop.is_set():
            offsets = await admin.list_consumer_group_offsets(settings.app_id, partitions=tps)
            now = time.time()
            for tp, meta in offsets.items():
                if meta.offset > 0:
                    samples.append((now, tp.partition, meta.offset))
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _read_dead_letters(settings: Settings, expected: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False,
        auto_offset_reset="earliest", group_id=None,
    )
    await consumer.start()
    tps = [TopicPartition(settings.dead_letter_topic_name, p)
           for p in range(settings.topic_partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    letters = []
    deadline = time.monotonic() + timeout
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                letters.extend(messages)
    finally:
        await consumer.stop()
    return letters


async def test_mixed_traffic_arrives_exactly_once_and_malformed_records_are_dead_lettered(
    settings: Settings, tmp_path: Path
) -> None:
    delivered_path = tmp_path / "delivered.ndjson"
    settings = settings.model_copy(
        update={
            "counting_sink_record_path": delivered_path,
            "max_record_bytes": MAX_RECORD_BYTES,
            # Commits far more often than the sink delivers: a commit past an undelivered
            # record would be caught by the offset check below.
            "commit_interval": 0.3,
            "counting_sink_flush_interval": 2.0,
        }
    )
    await ensure_topics(settings)
    await publish_entries(settings, [
        CatalogEntry(api_key_id="key-acme", customer_id="c-acme", customer_name="Acme",
                     usage_plan_id="p-gold", usage_plan_name="Gold"),
        CatalogEntry(api_key_id="key-globex", customer_id="c-globex", customer_name="Globex"),
    ])
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    samples: list = []
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(_sample_commits(settings, samples, stop_sampling))
    produced = Produced()
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5,
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
        await _produce_phase(producer, settings, produced, 1500, seed=1, after_update=False)
        await wait_for_no_lag(settings, worker)

        # While the worker runs: a new customer for key-initech, and key-globex deleted.
        await publish_entries(
            settings,
            [CatalogEntry(api_key_id="key-initech", customer_id="c-initech",
                          customer_name="Initech")],
            deleted_ids=["key-globex"],
        )
        await _wait_for_catalog_update(producer, settings, produced, delivered_path)
        await _produce_phase(producer, settings, produced, 1500, seed=2, after_update=True)
        await wait_for_no_lag(settings, worker)
    finally:
        await producer.stop()
        stop_sampling.set()
        await sampler
        exit_code = worker.stop()
    assert exit_code == 0, worker.log()[-3000:]

    # Exactly once: every produced event id, once.
    lines = [orjson.loads(line) for line in delivered_path.read_bytes().splitlines()]
    delivered_ids = [line["event_id"] for line in lines]
    expected_ids = produced.all_event_ids()
    assert len(expected_ids) > 3000
    assert len(delivered_ids) == len(set(delivered_ids)), "an event was delivered twice"
    assert set(delivered_ids) == set(expected_ids)

    # Every malformed record, and every bad event of a batch, is dead-lettered with its reason.
    expected_letters = len(produced.bad) + len(produced.bad_in_batch)
    letters = await _read_dead_letters(settings, expected_letters)
    assert len(letters) == expected_letters
    by_position = {}
    for letter in letters:
        headers = {name: value.decode() for name, value in letter.headers}
        position = (int(headers["sluice.source.partition"]), int(headers["sluice.source.offset"]))
        by_position[position] = (letter, headers)
    for position, error_class in produced.bad.items():
        letter, headers = by_position[position]
        assert headers["sluice.error.class"] == error_class
        assert headers["sluice.stage"] == "decode" and headers["sluice.error.message"]
    for position, (batch_index, error_class) in produced.bad_in_batch.items():
        letter, headers = by_position[position]
        assert (headers["sluice.batch_index"], headers["sluice.error.class"]) == (
            str(batch_index), error_class)
        assert orjson.loads(letter.value)["batch"][1]["userId"] == "u-x"  # original bytes

    # Enrichment: known keys enriched, unknown keys marked, catalog updates applied live:
    # key-initech added, key-globex deleted, key-acme untouched by the update.
    by_id = {line["event_id"]: line for line in lines}
    for (api_key, after_update), customer in CUSTOMERS.items():
        ids = produced.access_logs[(api_key, after_update)]
        assert ids, f"no access log of {api_key} {'after' if after_update else 'before'} update"
        seen = {(by_id[i]["enriched"], by_id[i]["customer_id"]) for i in ids}
        assert seen == {(customer is not None, customer)}, (api_key, after_update, seen)

    # Offsets: no committed offset ever passed a record that was not finished at that moment.
    finished_at: dict[tuple[int, int], float] = defaultdict(float)
    for line in lines:
        position = (line["partition"], line["offset"])
        finished_at[position] = max(finished_at[position], line["at"])
    for position, (_, headers) in by_position.items():
        failed = datetime.fromisoformat(headers["sluice.failed_at"]).timestamp()
        finished_at[position] = max(finished_at[position], failed)
    assert samples, "no committed offsets were observed"
    for sampled_at, partition, committed in samples:
        for offset in range(committed):
            done = finished_at.get((partition, offset))
            assert done is not None and done <= sampled_at + 0.001, (
                f"offset {committed} committed on partition {partition} at {sampled_at} while "
                f"offset {offset} finished at {done}"
            )
