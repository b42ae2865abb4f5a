"""Producing traffic: sample and synthetic records, or an NDJSON file replayed line by line.

Used by `sluice produce`, the demo and the benchmarks. Records go to the source topic with a
plain aiokafka producer, exactly as any other producer's would.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from aiokafka import AIOKafkaProducer

from worker.config import Settings
from worker.kafka.connection import client_options
from worker.local.samples import SampleTraffic, malformed_records

Tick = Callable[[int], None]


Record = tuple[bytes | None, bytes, str]


def synthetic_records(count: int, forms: tuple[str, ...], malformed_share: float,
                      max_record_bytes: int, seed: int) -> Iterator[Record]:
    """(key, value, kind) of `count` records: sample forms in turn, malformed ones at random."""
    traffic = SampleTraffic(seed=seed)
    chooser = random.Random(seed)
    bad = [sample for sample in malformed_records(seed, oversize_bytes=max_record_bytes)
           # An oversized sample must still fit the broker's own limit (about 1 MiB).
           if sample.name != "oversized" or max_record_bytes < 512 * 1024]
    for index in range(count):
        if chooser.random() < malformed_share:
            sample = chooser.choice(bad)
            yield None, sample.value, f"malformed:{sample.name}"
        else:
            record = traffic.record(forms[index % len(forms)])
            yield record.key, record.value, record.form


def file_records(path: Path) -> Iterator[Record]:
    """One record per non-empty line of an NDJSON file, bytes unchanged."""
    with path.open("rb") as lines:
        for line in lines:
            value = line.rstrip(b"\r\n")
            if value:
                yield None, value, "file"


async def produce(settings: Settings, records: Iterator[Record],
                  rate: float = 0.0, topic: str | None = None, tick: Tick | None = None
                  ) -> Counter[str]:
    """Send the records (at most `rate` per second if set); return how many of each kind."""
    kinds: Counter[str] = Counter()
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", linger_ms=10,
        max_request_size=2 * settings.max_record_bytes + 65536,
    )
    await producer.start()
    started = time.monotonic()
    pending: list[asyncio.Future] = []
    try:
        for sent, (key, value, kind) in enumerate(records, start=1):
            pending.append(await producer.send(topic or settings.source_topic, key=key,
                                               value=value))
            kinds[kind] += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                if tick:
                    tick(len(pending))
                pending = []
        await asyncio.gather(*pending)
        if tick and pending:
            tick(len(pending))
    finally:
        await producer.stop()
    return kinds
