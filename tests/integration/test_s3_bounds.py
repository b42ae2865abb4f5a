"""The S3 sink stays bounded: open parts under SLUICE_S3_MAX_OPEN_PARTS whatever the number of
directories, and a backlog of several hours closes its hours by the stream's own progress."""

from __future__ import annotations

import asyncio
import gzip
import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.test_s3_sink import _objects
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics
from worker.sinks.s3.sink import S3Sink, preflight

pytestmark = pytest.mark.integration

DIRECTORIES = 10_000
MAX_OPEN_PARTS = 256


class _Outcomes:
    def __init__(self) -> None:
        self.delivered = 0

    def delivered_(self, sink: str, events: Any) -> None:
        self.delivered += len(events)

    async def failed(self, sink: str, failures: Any) -> None:
        raise AssertionError(f"unexpected failures: {failures[:1]}")

    def lost(self, sink: str, partition: Any, reason: str) -> None:
        raise AssertionError(f"partition lost: {reason}")


class _Peaks:
    """Peak resident memory and open file descriptors of this process, sampled in a thread."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.start_rss = self.peak_rss = self.process.memory_info().rss
        self.start_fds = self.peak_fds = self.process.num_fds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            self.peak_fds = max(self.peak_fds, self.process.num_fds())

    def __enter__(self) -> _Peaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _event(topic: str, offset: int, source_id: str) -> Event:
    stamp = "2026-11-20T10:00:00.000Z"
    document = {"event_id": f"e-{offset}", "type": "track", "source_id": source_id,
                "timestamp": stamp, "received_at": stamp, "properties": {"n": offset}}
    record = SourceRecord(None, b"{}", KafkaPosition(topic, 0, offset))
    return Event(f"e-{offset}", document, record)


async def test_ten_thousand_directories_stay_under_the_part_bound_and_a_memory_bound(
    s3_settings: Settings,
) -> None:
    """A key template with {source_id} and 10,000 sources: at most SLUICE_S3_MAX_OPEN_PARTS
    parts are open at any time (file descriptors and memory follow), and every event is
    archived once, in its source's directory."""
    settings = s3_settings.model_copy(update={
        "s3_key_template": "sources/{source_id}/{date}/", "s3_max_open_parts": MAX_OPEN_PARTS,
        "s3_part_max_age": 3600.0, "s3_hour_close_grace": 10**7,
        "s3_max_buffered_events": 10**7})
    await preflight(settings)
    outcomes = _Outcomes()
    listener = type("Listener", (), {"delivered": lambda self, s, e: outcomes.delivered_(s, e),
                                     "failed": lambda self, s, f: outcomes.failed(s, f),
                                     "lost": lambda self, s, p, r: outcomes.lost(s, p, r),
                                     "contested": lambda self, s, p, r: outcomes.lost(s, p, r)})()
    sink = S3Sink(listener, settings)  # type: ignore[arg-type]
    await sink.start()
    topic = settings.source_topic
    sink.assign([(topic, 0)])
    await sink.flush()
    most_open = 0
    try:
        with _Peaks() as peaks:
            for first in range(0, DIRECTORIES, 500):
                await sink.write([_event(topic, offset, f"source-{offset}")
                                  for offset in range(first, first + 500)])
                most_open = max(most_open, sink.open_parts)
            await sink.flush()
    finally:
        await sink.stop()
    print(f"open parts at most {most_open}; fds {peaks.start_fds} -> {peaks.peak_fds}; "
          f"RSS +{(peaks.peak_rss - peaks.start_rss) / 2**20:.1f} MiB")
    assert most_open <= MAX_OPEN_PARTS
    assert peaks.peak_fds - peaks.start_fds <= MAX_OPEN_PARTS + 64
    # 256 parts of ~90-350 KiB each, plus the uploads' buffers: far below 10,000 parts' worth.
    assert peaks.peak_rss - peaks.start_rss < 160 * 2**20
    assert outcomes.delivered == DIRECTORIES
    assert sink.open_parts == 0 and sink.buffered_events == 0
    objects = await _objects(settings, "logs/sources/")
    assert len(objects) == DIRECTORIES
    ids = Counter(orjson.loads(line)["event_id"] for body in objects.values()
                  for line in gzip.decompress(body).splitlines())
    assert set(ids.values()) == {1} and len(ids) == DIRECTORIES


BACKLOG_RECORDS = 24_000
BACKLOG_HOURS = 4


async def _produce_backlog(settings: Settings, start: datetime) -> None:
    """Records spread evenly over the hours, stamped (Kafka timestamp) as if produced then."""
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=20)
    await producer.start()
    span_ms = BACKLOG_HOURS * 3600 * 1000
    start_ms = int(start.timestamp() * 1000)
    try:
        futures = []
        for index in range(BACKLOG_RECORDS):
            value = orjson.dumps({"type": "track", "event": "Backlogged", "userId": "u",
                                  "messageId": f"m-{index}"})
            futures.append(await producer.send(
                settings.source_topic, value=value, partition=index % 4,
                timestamp_ms=start_ms + index * span_ms // BACKLOG_RECORDS))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_a_backlog_of_several_hours_writes_one_object_per_partition_and_hour(
    s3_settings: Settings, tmp_path: Path
) -> None:
    """Hours close by the partition's own progress: a worker catching up four hours of records
    at full speed writes one object per (partition, hour), as live traffic would, and not a
    small object per partition at every check of the wall clock."""
    settings = s3_settings.model_copy(update={
        "s3_time_field": "received_at", "s3_part_max_age": 300.0,
        # Short, so that the last hour closes soon once the partitions are idle (10 s).
        "s3_hour_close_grace": 5.0})
    await ensure_topics(settings)
    start = (datetime.now(UTC) - timedelta(days=2)).replace(hour=8, minute=0, second=0,
                                                            microsecond=0)
    await _produce_backlog(settings, start)
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
    await wait_for_no_lag(settings, worker)
    assert worker.stop() == 0, worker.log()[-3000:]

    objects = await _objects(settings, "logs/year=")
    per_slot: Counter[tuple[str, str]] = Counter()
    ids: Counter[str] = Counter()
    for key, body in objects.items():
        hour, name = key.split("/")[4], key.split("/")[5]
        per_slot[(name.split("+")[1], hour)] += 1
        ids.update(orjson.loads(line)["event_id"] for line in gzip.decompress(body).splitlines())
    print(f"{len(objects)} objects for {len(per_slot)} (partition, hour) slots")
    assert len(ids) == BACKLOG_RECORDS and set(ids.values()) == {1}
    assert len(per_slot) == 4 * BACKLOG_HOURS
    assert set(per_slot.values()) == {1}, per_slot


async def test_event_times_outside_the_window_are_filed_by_the_kafka_timestamp(
    s3_settings: Settings,
) -> None:
    """A device clock in the year 9999 and a client-supplied receivedAt in the year 1000 do
    not choose hours: the record's Kafka timestamp does; the documents keep their times."""
    kafka = datetime.now(UTC) - timedelta(hours=3)
    kafka_ms = int(kafka.timestamp() * 1000)
    outcomes = _Outcomes()
    listener = type("Listener", (), {"delivered": lambda self, s, e: outcomes.delivered_(s, e),
                                     "failed": lambda self, s, f: outcomes.failed(s, f),
                                     "lost": lambda self, s, p, r: outcomes.lost(s, p, r),
                                     "contested": lambda self, s, p, r: outcomes.lost(s, p, r)})()
    topic = s3_settings.source_topic
    events = []
    for offset, (field, stamp) in enumerate([("timestamp", "9999-12-31T23:00:00.000Z"),
                                             ("received_at", "1000-01-01T00:00:00.000Z")]):
        document = {"event_id": f"e-{offset}", "type": "track",
                    "timestamp": kafka.isoformat(), "received_at": kafka.isoformat()}
        document[field] = stamp
        record = SourceRecord(None, b"{}", KafkaPosition(topic, 0, offset), kafka_ms)
        events.append((field, Event(f"e-{offset}", document, record)))
    for field, event in events:
        settings = s3_settings.model_copy(update={"s3_time_field": field,
                                                  "s3_prefix": f"logs/{field}/"})
        await preflight(settings)
        sink = S3Sink(listener, settings)  # type: ignore[arg-type]
        await sink.start()
        sink.assign([(topic, 0)])
        try:
            await sink.write([event])
            await sink.flush()
        finally:
            await sink.stop()
        objects = await _objects(settings, f"logs/{field}/year=")
        expected = kafka.strftime("year=%Y/month=%m/day=%d/hour=%H/")
        assert [key.split("/", 2)[2].rsplit("/", 1)[0] + "/" for key in objects] == [expected]
        (body,) = objects.values()
        assert orjson.loads(gzip.decompress(body))[field] == event.document[field]
    assert outcomes.delivered == 2
