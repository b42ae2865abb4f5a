"""`python -m bench.dedupe`: the retry window's memory per million ids and its cost per event.

Fills one partition's window (``worker.pipeline.dedupe``) with a million distinct ids (Segment
messageIds, UUID text) at 1,000 records a second, and reports the bytes it holds (tracemalloc,
the ids' own strings excluded: the window keeps 64-bit hashes, not the ids) and the time per
check. Prints one line; seconds on a quiet machine.
"""

from __future__ import annotations

import time
import tracemalloc
import uuid

from worker.events.records import KafkaPosition, SourceRecord
from worker.pipeline.dedupe import DedupeWindow

IDS = 1_000_000


def main() -> None:
    ids = [str(uuid.uuid4()) for _ in range(IDS)]
    records = [SourceRecord(None, b"", KafkaPosition("events", 0, n), 1_795_000_000_000 + n)
               for n in range(IDS)]
    timed = DedupeWindow(window_seconds=3600, max_ids=IDS)
    started = time.perf_counter()
    for record, event_id in zip(records, ids, strict=True):
        timed.seen(timed.begin(record), event_id)
    seconds = time.perf_counter() - started
    del timed
    window = DedupeWindow(window_seconds=3600, max_ids=IDS)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for record, event_id in zip(records, ids, strict=True):
        window.seen(window.begin(record), event_id)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    held_ids = window.ids_held()
    later = SourceRecord(None, b"", KafkaPosition("events", 0, IDS), 1_795_000_000_000 + IDS)
    partition = window.begin(later)
    retries = sum(window.seen(partition, event_id) for event_id in ids[-1000:])
    print(f"{held_ids:,} ids held: {held / 2**20:.1f} MiB ({held / IDS:.0f} bytes an "
          f"id); {seconds / IDS * 1e6:.2f} µs a record and check; "
          f"{retries} of 1,000 copies caught")


if __name__ == "__main__":
    main()
