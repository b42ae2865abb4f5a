"""The benchmark's events as the documents Sluice writes: decoded, normalised and enriched.

Used where a measurement needs Sluice's output without running Sluice: the codec comparison
(bench/codecs.py) and the plain bulk loader (bench/bulk_loader.py).
"""

from __future__ import annotations

from typing import Any

from bench.events import bench_events
from worker.catalog.enrichment import enrich
from worker.catalog.entries import CatalogEntry
from worker.events.decoding import decode_record
from worker.events.normalize import normalize
from worker.events.records import KafkaPosition, SourceRecord
from worker.local.samples import DEMO_CATALOG

# The Kafka time the documents' received_at comes from (the benchmark's events carry none).
RECEIVED_AT_MS = 1_763_800_000_000


def documents(count: int, topic: str = "bench") -> list[dict[str, Any]]:
    """The first `count` benchmark events as normalised documents, enriched from the demo
    catalog, as if read from one partition of `topic` from offset 0."""
    catalog = {entry["api_key_id"]: CatalogEntry(**entry) for entry in DEMO_CATALOG}
    docs = []
    for offset, (key, value) in enumerate(bench_events(count)):
        record = SourceRecord(key, value, KafkaPosition(topic, 0, offset), RECEIVED_AT_MS)
        for raw in decode_record(value, 1 << 20).events:
            _, document = normalize(raw, record)
            enrich(document, catalog.get)
            docs.append(document)
    return docs
