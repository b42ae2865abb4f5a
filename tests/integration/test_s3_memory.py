"""Memory stays flat while a 200 MB part is written: parts spool to disk and upload in chunks.

A measurement with a generous bound, not a timing assertion: the worker's resident memory may
not grow by more than a fraction of the part's size while the part is filled and uploaded.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from worker.config import Settings
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.s3.sink import S3Sink, make_client_context, preflight

pytestmark = pytest.mark.integration

PART_BYTES = 200 * 1024 * 1024


class _Outcomes:
    delivered_count = 0

    def delivered(self, sink: str, events: Any) -> None:
        self.delivered_count += len(events)

    async def failed(self, sink: str, failures: Any) -> None:
        raise AssertionError(f"unexpected failures: {failures[:1]}")


class _PeakRss:
    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_memory_stays_flat_while_a_200_mb_part_is_written(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "sinks": ["s3"], "s3_gzip_level": 1, "s3_part_max_bytes": PART_BYTES,
        "s3_part_max_events": 10_000_000, "s3_max_buffered_events": 10_000_000,
        "s3_part_max_age": 3600.0, "s3_hour_close_grace": 10**7,
    })
    rss, written, offset = await fill_one_part(settings)

    async with make_client_context(settings) as client:
        listing = await client.list_objects_v2(Bucket=settings.s3_bucket, Prefix="year=")
    (part,) = listing["Contents"]
    assert part["Size"] >= PART_BYTES
    growth = rss.peak - rss.start
    print(f"\n{written / 2**20:.0f} MiB of documents, part {part['Size'] / 2**20:.0f} MiB, "
          f"{offset} events, RSS {rss.start / 2**20:.0f} -> peak {rss.peak / 2**20:.0f} MiB "
          f"(+{growth / 2**20:.0f} MiB)")
    assert growth < 64 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MiB"


async def fill_one_part(settings: Settings) -> tuple[_PeakRss, int, int]:
    """Write ~16 KiB events of one partition until the sink has uploaded one part (of
    PART_BYTES); returns the resident-memory samples, the bytes of documents and the events."""
    await preflight(settings)
    outcomes = _Outcomes()
    sink = S3Sink(outcomes, settings)  # type: ignore[arg-type]
    await sink.start()
    topic = settings.source_topic
    sink.assign([(topic, 0)])
    # Hex of random bytes: compression gets it to about half, so ~400 MB of documents fill
    # the part.
    blob_size = 16 * 1024
    written = 0
    offset = 0
    try:
        with _PeakRss() as rss:
            while outcomes.delivered_count == 0:
                record = SourceRecord(None, b"", KafkaPosition(topic, 0, offset))
                document = {"event_id": f"e-{offset}", "type": "track",
                            "timestamp": "2026-11-20T10:00:00.000Z",
                            "received_at": "2026-11-20T10:00:00.000Z",
                            "properties": {"blob": os.urandom(blob_size // 2).hex()}}
                # Encoded as the pipeline encodes every event (Parquet sizes batches by it).
                await sink.write([Event(f"e-{offset}", document, record,
                                        encoded=orjson.dumps(document))])
                written += blob_size
                offset += 1
    finally:
        await sink.stop()
    return rss, written, offset
