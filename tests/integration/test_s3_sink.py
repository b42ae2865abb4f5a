"""The S3 sink against the local S3 server (SeaweedFS): layout, exactly-once objects, DuckDB."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.support.hourly import events_over_hours
from tests.support.hourly import produce as _produce
from tests.support.hourly import read_objects as _objects
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.kafka.topics import ensure_topics
from worker.sinks.s3.markers import Marker, MarkerStore, Pending
from worker.sinks.s3.naming import marker_key
from worker.sinks.s3.sink import S3Sink, make_client_context, preflight

pytestmark = pytest.mark.integration

def _duckdb_on_the_bucket(settings: Settings) -> duckdb.DuckDBPyConnection:
    """DuckDB with httpfs (from the duckdb-ext-httpfs package) and the bucket's credentials,
    set up as the README's example does."""
    import duckdb_ext

    connection = duckdb.connect()
    connection.execute("SET extension_directory = ?",
                       [str(Path(list(duckdb_ext.__path__)[0]) / "extensions")])
    connection.execute("LOAD httpfs")
    endpoint = (settings.s3_endpoint_url or "").split("://", 1)[-1]
    connection.execute(
        f"CREATE SECRET (TYPE s3, KEY_ID '{settings.aws_access_key_id}', "
        f"SECRET '{settings.aws_secret_access_key}', ENDPOINT '{endpoint}', URL_STYLE 'path', "
        f"USE_SSL false, REGION '{settings.s3_region}')")
    return connection


def _run_worker(settings: Settings, tmp_path: Path, name: str) -> SluiceProcess:
    worker = SluiceProcess(settings, ["worker"], tmp_path / f"{name}.log")
    worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
    return worker


async def test_events_land_in_hourly_parts_once_and_a_replay_writes_nothing_new(
    s3_settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(s3_settings)
    values, per_hour = events_over_hours(3000)
    await _produce(s3_settings, values)
    worker = _run_worker(s3_settings, tmp_path, "first")
    await wait_for_no_lag(s3_settings, worker)
    assert worker.stop() == 0, worker.log()[-3000:]

    objects = await _objects(s3_settings, "logs/year=")
    lines_by_key = {key: gzip.decompress(body).splitlines() for key, body in objects.items()}
    documents = [(key, orjson.loads(line)) for key, lines in lines_by_key.items()
                 for line in lines]
    ids = [document["event_id"] for _, document in documents]
    assert len(ids) == len(set(ids)) == 3000
    for key, document in documents:
        stamp = document["timestamp"]
        assert key.startswith(f"logs/year={stamp[:4]}/month={stamp[5:7]}/day={stamp[8:10]}/"
                              f"hour={stamp[11:13]}/{s3_settings.source_topic}+"), key
    assert {key.split("/")[4] for key in objects} == {"hour=09", "hour=10", "hour=11"}

    # The archive as Athena reads it: DuckDB straight from the bucket (the README's example),
    # hive partitions; the markers under _sluice/ in the same bucket stay out of the glob.
    connection = _duckdb_on_the_bucket(s3_settings)
    rows = connection.sql(
        f"select hour, count(*), count(distinct event_id) from read_json_auto("
        f"'s3://{s3_settings.s3_bucket}/logs/year=*/*/*/*/*.ndjson.gz', hive_partitioning=true) "
        "group by hour order by hour"
    ).fetchall()
    assert {str(hour).zfill(2): (lines, ids) for hour, lines, ids in rows} == {
        hour: (n, n) for hour, n in per_hour.items()}

    # A replay of the same offsets (a new consumer group) writes no second copy.
    replay = s3_settings.model_copy(update={"app_id": s3_settings.app_id + "-replay"})
    worker = _run_worker(replay, tmp_path, "replay")
    await wait_for_no_lag(replay, worker)
    assert worker.stop() == 0
    assert set(await _objects(s3_settings, "logs/year=")) == set(objects)
    assert "S3 holds every record below offset" in worker.log()


class _Outcomes:
    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.lost: list[tuple[str, int]] = []
        self.contested: list[tuple[str, int]] = []

    def delivered_(self, sink: str, events: Any) -> None:
        self.delivered.extend(e.event_id for e in events)

    async def failed(self, sink: str, failures: Any) -> None:
        raise AssertionError(f"unexpected failures: {failures}")

    def lost_(self, sink: str, partition: tuple[str, int], reason: str) -> None:
        self.lost.append(partition)

    def contested_(self, sink: str, partition: tuple[str, int], reason: str) -> None:
        self.contested.append(partition)


def _event(offset: int, partition: int, topic: str) -> Event:
    document = {"event_id": f"e-{offset}", "type": "track",
                "timestamp": "2026-11-20T10:00:00.000Z", "received_at": "2026-11-20T10:00:00.000Z"}
    record = SourceRecord(None, b"{}", KafkaPosition(topic, partition, offset))
    return Event(f"e-{offset}", document, record)


async def _sink(settings: Settings, partitions: range | list[int] = range(4),
                ) -> tuple[S3Sink, _Outcomes]:
    """A started sink that owns these partitions of the source topic (claimed when it returns)."""
    outcomes = _Outcomes()
    listener = type("Listener", (), {"delivered": lambda self, s, e: outcomes.delivered_(s, e),
                                     "failed": lambda self, s, f: outcomes.failed(s, f),
                                     "lost": lambda self, s, p, r: outcomes.lost_(s, p, r),
                                     "contested": lambda self, s, p, r:
                                         outcomes.contested_(s, p, r)})()
    sink = S3Sink(listener, settings)  # type: ignore[arg-type]
    await sink.start()
    sink.assign([(settings.source_topic, partition) for partition in partitions])
    await sink.flush()  # returns once the partitions are taken over
    return sink, outcomes


async def test_half_done_flush_of_a_dead_owner_is_undone_and_written_once(
    s3_settings: Settings,
) -> None:
    """A worker died after naming two parts and uploading one: the next owner removes it."""
    await preflight(s3_settings)
    topic = s3_settings.source_topic
    key = marker_key(s3_settings.s3_prefix, topic, 0)
    orphan = f"logs/year=2026/month=11/day=20/hour=10/{topic}+0+000000000000+000000000004.ndjson.gz"
    async with make_client_context(s3_settings) as client:
        store = MarkerStore(client, s3_settings.s3_bucket)
        marker = await store.write(key, Marker(0), None, "dead-worker")
        await store.write(key, Marker(0, Pending(5, [orphan, orphan + ".other"])), marker.etag,
                          "dead-worker")
        await client.put_object(Bucket=s3_settings.s3_bucket, Key=orphan, Body=b"half")

    sink, outcomes = await _sink(s3_settings)
    try:
        await sink.write([_event(offset, 0, topic) for offset in range(5)])
        await sink.flush()
    finally:
        await sink.stop()

    objects = await _objects(s3_settings, "logs/year=")
    assert list(objects) == [orphan]  # rewritten by the new owner, whole this time
    assert [orjson.loads(line)["event_id"] for line in gzip.decompress(objects[orphan]).splitlines()
            ] == [f"e-{offset}" for offset in range(5)]
    assert outcomes.delivered == [f"e-{offset}" for offset in range(5)]


async def test_a_worker_that_lost_its_partition_cannot_commit_a_flush(
    s3_settings: Settings,
) -> None:
    await preflight(s3_settings)
    topic = s3_settings.source_topic
    old_owner, old_outcomes = await _sink(s3_settings)
    new_owner, new_outcomes = await _sink(s3_settings)
    try:
        await old_owner.write([_event(offset, 0, topic) for offset in range(3)])
        # The partition moves: the new owner claims it (and is given the same records).
        await new_owner.write([_event(offset, 0, topic) for offset in range(3)])
        await old_owner.flush()
        await new_owner.flush()
    finally:
        await old_owner.stop()
        await new_owner.stop()
    assert old_outcomes.delivered == []
    # Another worker's claim: the pipeline consumes it again (or forgets it), and rejoins the
    # group if it is still assigned here.
    assert old_outcomes.contested == [(topic, 0)] and old_outcomes.lost == []
    assert new_outcomes.delivered == ["e-0", "e-1", "e-2"] and new_outcomes.lost == []
    objects = await _objects(s3_settings, "logs/year=")
    ids = [orjson.loads(line)["event_id"] for body in objects.values()
           for line in gzip.decompress(body).splitlines()]
    assert sorted(ids) == ["e-0", "e-1", "e-2"]


async def test_csv_output_writes_a_header_and_mapped_columns(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={
        "s3_format": "csv", "s3_csv_columns": ["id=event_id", "type", "hour=timestamp"],
        "s3_key_template": "csv/{date}/",
    })
    await preflight(settings)
    sink, outcomes = await _sink(settings)
    try:
        await sink.write([_event(offset, 1, settings.source_topic) for offset in range(3)])
        await sink.flush()
    finally:
        await sink.stop()
    (key,) = await _objects(settings, "logs/csv/")
    assert key.startswith("logs/csv/2026-11-20/") and key.endswith(".csv.gz")
    body = gzip.decompress((await _objects(settings, key))[key]).decode()
    assert body.splitlines() == ["id,type,hour"] + [
        f"e-{n},track,2026-11-20T10:00:00.000Z" for n in range(3)]
    assert outcomes.delivered == ["e-0", "e-1", "e-2"]
