"""The Elasticsearch sink against the local Elasticsearch-API server, with and without faults.

Each test runs a `sluice worker` process with only the Elasticsearch sink, produces records with
a plain aiokafka producer, and reads back what Elasticsearch holds. The fault proxy sits
between the worker and Elasticsearch where a test needs 429s, 503s, dropped connections or 401.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch

from tests.support.es_reads import client, count, index_glob, refresh, search
from tests.support.es_templates import install_typed_properties_template
from tests.support.fault_proxy import FaultProxy
from tests.support.processes import SluiceProcess, free_port, wait_for_no_lag
from tests.support.waiting import eventually
from worker.config import Settings
from worker.deadletters.replay import dead_letter_end_offsets, read_dead_letters
from worker.kafka.connection import client_options
from worker.kafka.group_offsets import group_progress
from worker.kafka.topics import ensure_topics
from worker.local.samples import SampleTraffic

pytestmark = pytest.mark.integration

@pytest.fixture
def es_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "sinks": ["elasticsearch"],
        "elasticsearch_batch_max_age": 0.3,
        "elasticsearch_retry_initial": 0.1,
        "elasticsearch_retry_max": 1.0,
        "commit_interval": 0.5,
    })


@pytest.fixture
async def es(settings: Settings) -> AsyncIterator[AsyncElasticsearch]:
    """A client of the settings' cluster; reads go through tests/support/es_reads.py."""
    es = client(settings)
    yield es
    await es.close()


@pytest.fixture
def proxy(settings: Settings) -> Iterator[FaultProxy]:
    proxy = FaultProxy(settings.elasticsearch_url.split(",")[0]).start()
    yield proxy
    proxy.stop()


async def _produce(settings: Settings, values: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.source_topic, key=k, value=v) for k, v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _sample_values(count: int, seed: int) -> tuple[list[tuple[bytes | None, bytes]], set[str]]:
    """Sample records in every form, and the event ids they carry."""
    values, ids = [], set()
    traffic = SampleTraffic(seed=seed)
    for record in traffic.records(count):
        values.append((record.key, record.value))
        ids.update(_ids_of(record.form, record.value))
    return values, ids


def _ids_of(form: str, value: bytes) -> list[str]:
    if form == "base64":
        return [orjson.loads(base64.b64decode(value))["messageId"]]
    fields = orjson.loads(value)
    if form == "firehose":
        return [orjson.loads(base64.b64decode(fields["Record"]["Data"]))["messageId"]]
    if form == "segment_batch":
        return [event["messageId"] for event in fields["batch"]]
    return [fields.get("messageId") or fields["requestId"]]


async def _ids_in_es(es: AsyncElasticsearch, settings: Settings) -> list[str]:
    await refresh(es, index_glob(settings))
    response = await search(es, index_glob(settings), size=10_000, source=False,
                            query={"match_all": {}})
    return [hit["_id"] for hit in response["hits"]["hits"]]


def _start_worker(settings: Settings, tmp_path: Path, name: str = "worker") -> SluiceProcess:
    worker = SluiceProcess(settings, ["worker"], tmp_path / f"{name}.log")
    worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
    return worker


async def test_mixed_events_become_one_document_each_in_their_daily_index(
    es_settings: Settings, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    await ensure_topics(es_settings)
    values, ids = _sample_values(300, seed=11)
    # Two events on different days inside the accepted event-time window: they land in their
    # own daily indices. One from a device clock far in the past: filed by its Kafka timestamp.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day_one, day_two = today - timedelta(days=5), today - timedelta(days=12)
    for day, message_id in ((day_one, "day-one"), (day_two, "day-two"),
                            (datetime(2021, 1, 5, tzinfo=UTC), "far-past")):
        event = {"type": "track", "event": "Order Completed", "userId": "u1",
                 "messageId": message_id, "timestamp": f"{day:%Y-%m-%d}T23:59:59Z",
                 "properties": {"revenue": 12.5}}
        values.append((None, orjson.dumps(event)))
        ids.add(message_id)
    worker = _start_worker(es_settings, tmp_path)
    try:
        await _produce(es_settings, values)
        await wait_for_no_lag(es_settings, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    stored = await _ids_in_es(es, es_settings)
    assert len(stored) == len(set(stored)) == len(ids)
    assert set(stored) == ids
    prefix = es_settings.elasticsearch_index.split("%")[0]
    found = await es.get(index=f"{prefix}{day_one:%Y.%m.%d}", id="day-one")
    assert found["_source"]["timestamp"] == f"{day_one:%Y-%m-%d}T23:59:59.000Z"
    assert await es.exists(index=f"{prefix}{day_two:%Y.%m.%d}", id="day-two")
    tracks = await count(es, index_glob(es_settings), query={"bool": {"filter": [
        {"term": {"type": "track"}},
        {"range": {"timestamp": {"gte": f"{day_two:%Y-%m-%d}",
                                 "lt": f"{day_one + timedelta(days=1):%Y-%m-%d}"}}},
    ]}})
    assert tracks == 2
    # No index for 2021: the day of the record's Kafka timestamp (its received_at) instead.
    assert not await es.indices.exists(index=f"{prefix}2021.01.05")
    far = (await search(es, index_glob(es_settings),
                        query={"ids": {"values": ["far-past"]}}))["hits"]["hits"][0]
    received = far["_source"]["received_at"]
    assert far["_index"] == f"{prefix}{received[:10].replace('-', '.')}"
    assert far["_source"]["timestamp"] == "2021-01-05T23:59:59.000Z"


async def test_consuming_the_same_records_again_creates_no_duplicates(
    es_settings: Settings, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    await ensure_topics(es_settings)
    values, ids = _sample_values(200, seed=12)
    await _produce(es_settings, values)
    worker = _start_worker(es_settings, tmp_path, "first")
    await wait_for_no_lag(es_settings, worker)
    assert worker.stop() == 0
    # A new consumer group reads the same records from the start: a full replay.
    replay = es_settings.model_copy(update={"app_id": es_settings.app_id + "-replay"})
    worker = _start_worker(replay, tmp_path, "replay")
    await wait_for_no_lag(replay, worker)
    assert worker.stop() == 0

    stored = await _ids_in_es(es, es_settings)
    assert len(stored) == len(ids) and set(stored) == ids


async def test_producer_objects_of_any_shape_are_indexed_without_type_conflicts(
    es_settings: Settings, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    # Sluice's template maps context / properties / traits as `flattened`: a property that is
    # a number in one event and text or an object in the next is indexed either way, and many
    # distinct keys add no fields to the mapping.
    await ensure_topics(es_settings)
    shapes = [10, "ten euros", {"net": 8, "tax": 2}, [1, 2], True]
    events = [{"type": "track", "event": "Paid", "userId": f"u{i}", "messageId": f"shape-{i}",
               "properties": {"amount": shape}, "context": {"ip": "10.0.0.1", "custom": shape}}
              for i, shape in enumerate(shapes)]
    events += [{"type": "identify", "userId": f"u{i}", "messageId": f"traits-{i}",
                "traits": {"plan": shape}} for i, shape in enumerate(shapes)]
    events += [{"type": "track", "event": "Wide", "userId": "u", "messageId": f"wide-{i}",
                "properties": {f"key_{i}_{j}": j for j in range(50)}} for i in range(10)]
    before = await dead_letter_end_offsets(es_settings)
    worker = _start_worker(es_settings, tmp_path)
    try:
        for event in events:  # one at a time: each shape meets the mapping the last one left
            await _produce(es_settings, [(None, orjson.dumps(event))])
        await wait_for_no_lag(es_settings, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    assert set(await _ids_in_es(es, es_settings)) == {e["messageId"] for e in events}
    after = await dead_letter_end_offsets(es_settings)
    assert await read_dead_letters(es_settings, before, after) == []
    found = await search(es, index_glob(es_settings),
                         query={"term": {"properties.amount": "ten euros"}})
    assert [hit["_id"] for hit in found["hits"]["hits"]] == ["shape-1"]
    mapping = await es.indices.get_mapping(index=index_glob(es_settings))
    for index in mapping.body.values():
        fields = index["mappings"]["properties"]
        assert {fields[name]["type"] for name in ("context", "properties", "traits")
                if name in fields} == {"flattened"}


async def test_document_with_a_conflicting_field_type_is_dead_lettered_with_the_reason(
    es_settings: Settings, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    es_settings = await install_typed_properties_template(es_settings, "amount")
    await ensure_topics(es_settings)
    events = [{"type": "track", "event": "Paid", "userId": f"u{i}", "messageId": f"ok-{i}",
               "properties": {"amount": i}} for i in range(20)]
    # `properties.amount` is a long in the user's template: a string cannot be indexed.
    events.insert(10, {"type": "track", "event": "Paid", "userId": "u-bad",
                       "messageId": "conflict", "properties": {"amount": "a lot"}})
    batch = orjson.dumps({"batch": events})
    before = await dead_letter_end_offsets(es_settings)
    worker = _start_worker(es_settings, tmp_path)
    try:
        await _produce(es_settings, [(None, orjson.dumps(events[0]))])  # maps `amount` first
        await wait_for_no_lag(es_settings, worker)
        await _produce(es_settings, [(None, batch)])
        await wait_for_no_lag(es_settings, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    stored = set(await _ids_in_es(es, es_settings))
    assert stored == {f"ok-{i}" for i in range(20)}
    after = await dead_letter_end_offsets(es_settings)
    (letter,) = [d.headers for d in await read_dead_letters(es_settings, before, after)]
    assert (letter["stage"], letter["error.class"], letter["event_id"]) == (
        "elasticsearch", "SinkRejected", "conflict")
    assert letter["batch_index"] == "10"
    assert "parsing_exception" in letter["error.message"] and letter["retriable"] == "false"


async def test_items_refused_with_429_are_retried_alone_until_indexed(
    es_settings: Settings, es: AsyncElasticsearch, proxy: FaultProxy, tmp_path: Path
) -> None:
    settings = es_settings.model_copy(update={"elasticsearch_url": proxy.url})
    await ensure_topics(settings)
    values, ids = _sample_values(120, seed=13)
    refused = set(sorted(ids)[::10])
    proxy.reject_bulk_items(refused, times=2, status=429)
    worker = _start_worker(settings, tmp_path)
    try:
        await _produce(settings, values)
        await wait_for_no_lag(settings, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    assert set(await _ids_in_es(es, es_settings)) == ids
    assert {event_id: proxy.bulk_attempts[event_id] for event_id in refused} == {
        event_id: 3 for event_id in refused}
    assert all(proxy.bulk_attempts[event_id] == 1 for event_id in ids - refused)


async def test_a_read_only_index_holds_documents_reports_unready_and_dead_letters_nothing(
    es_settings: Settings, es: AsyncElasticsearch, proxy: FaultProxy, tmp_path: Path
) -> None:
    # 403 cluster_block_exception (the flood-stage disk watermark) for 12 attempts, far past
    # SLUICE_ELASTICSEARCH_ITEM_MAX_ATTEMPTS=3: the documents are held, not dead-lettered.
    settings = es_settings.model_copy(update={
        "elasticsearch_url": proxy.url, "elasticsearch_item_max_attempts": 3,
        "elasticsearch_backpressure_timeout": 1.0, "web_port": free_port()})
    await ensure_topics(settings)
    values, ids = _sample_values(60, seed=21)
    blocked = set(sorted(ids)[::6])
    proxy.reject_bulk_items(blocked, times=12, status=403, error_type="cluster_block_exception")
    before = await dead_letter_end_offsets(settings)
    worker = _start_worker(settings, tmp_path)
    try:
        await _produce(settings, values)
        problems = await _wait_unready(settings.web_port, "sink.elasticsearch")
        assert "cluster_block_exception" in problems["sink.elasticsearch"]
        progress = await group_progress(settings, settings.source_topic)
        assert sum(p.lag for p in progress) > 0  # held records are not committed
        await wait_for_no_lag(settings, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    assert set(await _ids_in_es(es, es_settings)) == ids
    assert all(proxy.bulk_attempts[event_id] == 13 for event_id in blocked)
    after = await dead_letter_end_offsets(settings)
    assert await read_dead_letters(settings, before, after) == []


async def _wait_unready(port: int, problem: str) -> dict[str, str]:
    """The worker's readiness problems, once `problem` is among them."""
    url = f"http://127.0.0.1:{port}/health/ready"
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url) as response:
                    body = await response.json()
                    if response.status == 503 and problem in body.get("problems", {}):
                        return body["problems"]
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"/health/ready never reported {problem}")


async def test_outage_pauses_acknowledgement_and_nothing_is_lost(
    es_settings: Settings, es: AsyncElasticsearch, proxy: FaultProxy, tmp_path: Path
) -> None:
    settings = es_settings.model_copy(update={"elasticsearch_url": proxy.url})
    await ensure_topics(settings)
    first, first_ids = _sample_values(100, seed=14)
    during, during_ids = _sample_values(100, seed=15)
    worker = _start_worker(settings, tmp_path)
    try:
        await _produce(settings, first)
        await wait_for_no_lag(settings, worker)
        committed_before = sum(p.committed or 0 for p in
                               await group_progress(settings, settings.source_topic))
        proxy.outage()
        await _produce(settings, during)
        # Not a fixed sleep: until the worker has consumed the records and had their bulk
        # request refused again and again (backoff 0.1 s doubling to 1 s: five refusals span
        # about 2.5 s, five commit intervals), so that a wrong commit would have happened.
        await eventually(lambda: proxy.refused_bulk >= 5, timeout=60,
                         what="five refused requests during the outage")
        progress = await group_progress(settings, settings.source_topic)
        # Consumed, perhaps, but not written: so nothing may be committed past them.
        assert sum(p.committed or 0 for p in progress) == committed_before
        assert sum(p.lag for p in progress) == len(during)
        proxy.restore()
        proxy.drop_next(2)     # and a couple of connections dropped on the way back
        proxy.fail_next(2, 503)
        await wait_for_no_lag(settings, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    assert set(await _ids_in_es(es, es_settings)) == first_ids | during_ids
    assert "bulk request of" in worker.log() and "failed" in worker.log()


def test_bad_credentials_fail_at_start_up_with_what_to_check(
    es_settings: Settings, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.unauthorized = True
    settings = es_settings.model_copy(update={"elasticsearch_url": proxy.url,
                                              "elasticsearch_api_key": "bm9wZTpub3Bl"})
    environment = {**settings.as_environment(), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "worker", "worker"], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "401 Unauthorized" in result.stderr
    assert "SLUICE_ELASTICSEARCH_API_KEY" in result.stderr


async def test_a_data_stream_keeps_the_first_write_and_counts_a_repeated_create_as_written(
    es_settings: Settings, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    # SLUICE_ELASTICSEARCH_DATA_STREAM=true writes `create` operations with the event id as
    # `_id`. Consumed again (here: by a new group reading the whole topic), every event is
    # answered 409 version_conflict_engine_exception by the server itself; that counts as
    # written, not as a rejection. `create` never overwrites: a later record with the same
    # event id leaves the first document as it was.
    # The local ES-API server knows no data streams (it makes a plain index of the name and has
    # no rollover): what is checked here is the server's 409 on `create` and the worker's
    # answer to it. What a rollover means for replays on Elasticsearch: README, "Data streams".
    prefix = es_settings.elasticsearch_index.split("%")[0]
    stream = es_settings.model_copy(update={"elasticsearch_data_stream": True,
                                            "elasticsearch_index": f"{prefix}stream"})
    await ensure_topics(stream)
    values, ids = _sample_values(60, seed=31)
    first = {"type": "track", "event": "Paid", "userId": "u1", "messageId": "same",
             "properties": {"version": 1}}
    values.append((None, orjson.dumps(first)))
    ids.add("same")
    await _produce(stream, values)
    before = await dead_letter_end_offsets(stream)
    worker = _start_worker(stream, tmp_path, "first")
    try:
        await wait_for_no_lag(stream, worker)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    template = await es.indices.get_index_template(name=stream.elasticsearch_template_name)
    assert template["index_templates"][0]["index_template"]["data_stream"] == {}

    again = {**first, "properties": {"version": 2}}
    await _produce(stream, [(None, orjson.dumps(again))])
    replay = stream.model_copy(update={"app_id": stream.app_id + "-replay"})
    worker = _start_worker(replay, tmp_path, "replay")
    try:
        await wait_for_no_lag(replay, worker)  # every create answered 409, and committed
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    assert await read_dead_letters(stream, before, await dead_letter_end_offsets(stream)) == []
    stored = await _ids_in_es(es, stream)
    assert len(stored) == len(set(stored)) and set(stored) == ids
    hit = (await search(es, index_glob(stream), query={"ids": {"values": ["same"]}}))[
        "hits"]["hits"][0]
    assert hit["_source"]["properties"] == {"version": 1}  # the first write stays
    assert hit["_source"]["@timestamp"] == hit["_source"]["timestamp"]
