"""What keeping big integers exactly costs: the record decoder, old and new, on benchmark events.

`python -m bench.json_decoding [--events N]` measures, best of a few interleaved rounds, per
record of the benchmark (bench/events.py, about 680 bytes each):

- `orjson.loads`, the decoder before integers beyond 64 bits were kept;
- `worker.events.json_codec.loads` (msgspec, falling back to orjson only for invalid JSON);
- `decode_record` whole (form detection and unwrapping), which the worker runs per record;
- the encoder of the documents (`orjson.dumps`, unchanged on the hot path) next to
  `json_codec.dumps`, which ordinary documents pass through untouched;

and, for scale, the same decoder on a record carrying a 30-digit integer, the case it exists for.
The machine is shared: rounds alternate between the variants and the minimum is reported.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.documents import documents
from bench.events import bench_events
from worker.events import json_codec
from worker.events.decoding import decode_record

ROUNDS = 7
BIG = b'{"type":"track","event":"Big","userId":123456789012345678901234567890,' \
      b'"properties":{"id":123456789012345678901234567890,"n":1}}'


def _per_item(work: Callable[[Any], Any], items: list[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        work(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def measure(events: int) -> dict[str, float]:
    """Microseconds per record (or document) of each variant, best of ROUNDS."""
    values = [value for _, value in bench_events(events)]
    docs = documents(min(events, 20_000))
    variants: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
        "orjson.loads (before)": (orjson.loads, values),
        "json_codec.loads (now)": (json_codec.loads, values),
        "decode_record (now)": (lambda v: decode_record(v, 1 << 20), values),
        "orjson.dumps of a document": (orjson.dumps, docs),
        "json_codec.dumps of a document": (json_codec.dumps, docs),
        "json_codec.loads, 30-digit ints": (json_codec.loads, [BIG] * 2000),
        "json_codec.dumps, 30-digit ints": (json_codec.dumps,
                                            [json_codec.loads(BIG)] * 2000),
    }
    best = {name: float("inf") for name in variants}
    for _ in range(ROUNDS):
        for name, (work, items) in variants.items():
            best[name] = min(best[name], _per_item(work, items))
    return best


def main() -> None:
    events = 20_000
    if "--events" in sys.argv:
        events = int(sys.argv[sys.argv.index("--events") + 1])
    for name, micros in measure(events).items():
        print(f"{name:<34} {micros:7.3f} µs")


if __name__ == "__main__":
    main()
