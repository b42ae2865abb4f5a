"""The hot path alone: the pipeline fed in-process, no broker, no network.

`python -m bench.profile_pipeline [EVENTS] [--profile] [--stages]` feeds the benchmark's events
through `Pipeline.submit_batch` (batches of 500 records of a partition, as the batch consumer
hands them over) with the counting sink and prints microseconds per record; `--profile` adds a
pyinstrument report. It separates Sluice's own per-record cost from Faust's and the servers'.

Times are the process's CPU time (`time.process_time`), not the wall clock: on a machine
shared with other work the wall clock measures the neighbours too. `--stages` adds the CPU time
of each preparation stage alone over the same events: decoding and normalising as the worker
does them (the typed pass, one step) and, for comparison, as the general path does them.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time

from bench.events import bench_events
from worker.catalog.entries import CatalogEntry
from worker.config import load_settings
from worker.deadletters.publisher import DeadLetterPublisher
from worker.events.records import KafkaPosition, SourceRecord
from worker.local.samples import DEMO_CATALOG
from worker.pipeline.wiring import Pipeline
from worker.sinks.counting import CountingSink

CATALOG = {e["api_key_id"]: CatalogEntry.model_validate(e) for e in DEMO_CATALOG}


async def feed(count: int) -> float:
    """Seconds to submit `count` records and see every one acknowledged."""
    settings = load_settings(sinks=["counting"], web_port=0)
    pipeline = Pipeline(settings, DeadLetterPublisher(settings), CATALOG.get)
    pipeline.add_sink(lambda outcomes: CountingSink(outcomes, max_age_seconds=0.05))
    pipeline.assign([("bench", partition) for partition in range(4)])
    await pipeline.sinks[0].start()
    records = [SourceRecord(key, value, KafkaPosition("bench", n % 4, n // 4), 1_763_800_000_000)
               for n, (key, value) in enumerate(bench_events(count))]
    acked = 0

    def ack(count: int) -> None:
        nonlocal acked
        acked += count

    # As the batch consumer hands them over: up to 500 consecutive records of one partition.
    by_partition: dict[int, list[SourceRecord]] = {}
    for record in records:
        by_partition.setdefault(record.position.partition, []).append(record)
    batches = [(part[i:i + 500]) for part in by_partition.values()
               for i in range(0, len(part), 500)]
    started = time.process_time()
    for batch in batches:
        await pipeline.submit_batch(batch, lambda n=len(batch): ack(n))
    while acked < count:
        await asyncio.sleep(0.001)
    seconds = time.process_time() - started
    await pipeline.sinks[0].stop()
    return seconds


def stages(count: int) -> dict[str, float]:
    """CPU µs per event of each preparation stage alone, over the benchmark's events."""
    import orjson

    from worker.catalog.enrichment import enrich
    from worker.events.decoding import classify, decode_record, decode_value
    from worker.events.normalize import general_document, normalize
    from worker.events.typed_forms import typed_record

    records = [SourceRecord(key, value, KafkaPosition("bench", n % 4, n // 4), 1_763_800_000_000)
               for n, (key, value) in enumerate(bench_events(count))]
    lookup = CATALOG.get
    timings: dict[str, float] = {}

    def timed(name: str, work):  # noqa: ANN001, ANN202
        # The collector off: the results of every stage are kept, and collections walking
        # them would be charged to whichever stage happened to trigger them.
        gc.disable()
        try:
            started = time.process_time()
            result = work()
            timings[name] = (time.process_time() - started) / count * 1e6
        finally:
            gc.enable()
        return result

    def typed(record: SourceRecord) -> list[dict]:  # as worker.pipeline.preparation runs it
        decoded = decode_value(record.value, 1 << 20)
        if type(decoded) is dict:
            done = typed_record(decoded, record)
            if done is not None:
                return [done[1]]
            decoded = classify(decoded)
        return [normalize(raw, record)[1] for raw in decoded.events]

    # The general path alone, as before the typed pass, for comparison.
    decoded = timed("decode (general)",
                    lambda: [(decode_record(r.value, 1 << 20), r) for r in records])
    raws = [(raw, record) for result, record in decoded for raw in result.events]
    timed("normalise (general)", lambda: [general_document(raw, record) for raw, record in raws])
    decoded = raws = []
    documents = timed("decode + normalise (typed pass)",
                      lambda: [document for record in records for document in typed(record)])
    timed("enrich", lambda: [enrich(document, lookup) for document in documents])
    timed("encode (orjson)", lambda: [orjson.dumps(document) for document in documents])
    return timings


def main() -> None:
    if "--gc" in sys.argv:
        from worker.ops.gc_tuning import tune_for_throughput

        tune_for_throughput()
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), 100_000))
    if "--profile" in sys.argv:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        seconds = asyncio.run(feed(count))
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        seconds = asyncio.run(feed(count))
    print(f"{count:,} records in {seconds:.2f}s of CPU: {seconds / count * 1e6:.1f} µs/record, "
          f"{count / seconds:,.0f} records/s")
    if "--stages" in sys.argv:
        for name, micros in stages(count).items():
            print(f"  {name:<32} {micros:5.2f} µs/event")


if __name__ == "__main__":
    main()
