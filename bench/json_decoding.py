"""Decoding records and normalising them into documents: each way of doing it, per record.

`python -m bench.json_decoding [--events N] [--rounds R]` measures CPU microseconds per record,
best of R rounds that alternate between the variants (the machine is shared: the minimum is the
figure least disturbed by neighbours), with the collector off as the worker keeps it rare
(``worker.ops.gc_tuning``):

**Decode + normalise**, from a record's bytes to its event's document, as the worker needs it:

- ``orjson + general``: ``orjson.loads``, form detection and the general normaliser (the
  issue's baseline: orjson plus the normaliser of before the typed pass);
- ``msgspec dict + general``: the same with ``json_codec.loads`` (integers beyond 64 bits kept),
  what the worker ran before the typed pass;
- ``msgspec Struct (not exact)``: the prototype of ``bench/struct_forms.py``, Structs decoded
  straight from the bytes, the general path for whatever fails them;
- ``msgspec dict + typed pass``: what the worker runs now (``worker.events.typed_forms``).

each on the benchmark's records (bench/events.py) and on lenient and hostile shapes (numbers as
text, "-" values, CLF times, batches, Firehose, BOM, lone surrogates, duplicate keys, 30-digit
integers, the samples' malformed records), which the typed pass leaves to the general path.

**The JSON decoder alone** (``orjson.loads``, ``json_codec.loads``, ``decode_record``) and **the
document encoders** (``orjson.dumps``, ``json_codec.dumps``), with a record carrying 30-digit
integers for scale.
"""

from __future__ import annotations

import base64
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench import struct_forms
from bench.documents import documents
from bench.events import bench_events
from worker.events import json_codec
from worker.events.decoding import DecodedRecord, classify, decode_record, decode_value
from worker.events.errors import DecodeError
from worker.events.normalize import general_document, normalize
from worker.events.records import KafkaPosition, SourceRecord
from worker.events.typed_forms import typed_record
from worker.local.samples import malformed_records

ROUNDS = 7
BIG = b'{"type":"track","event":"Big","userId":123456789012345678901234567890,' \
      b'"properties":{"id":123456789012345678901234567890,"n":1}}'
KAFKA_MS = 1_763_800_000_000


def _general(decoded: DecodedRecord, record: SourceRecord) -> None:
    for raw in decoded.events:
        try:
            general_document(raw, record)
        except DecodeError:
            pass


def orjson_general(record: SourceRecord) -> None:
    """orjson.loads, then form detection and the general normaliser."""
    try:
        parsed = orjson.loads(record.value or b"")
        decoded = classify(parsed) if type(parsed) is dict else decode_record(record.value, 1 << 20)
    except (orjson.JSONDecodeError, DecodeError):
        return
    _general(decoded, record)


def msgspec_general(record: SourceRecord) -> None:
    """decode_record (json_codec: msgspec), then the general normaliser."""
    try:
        decoded = decode_record(record.value, 1 << 20)
    except DecodeError:
        return
    _general(decoded, record)


def typed_pass(record: SourceRecord) -> None:
    """As worker.pipeline.preparation runs it: the typed pass, the general path for the rest."""
    try:
        decoded = decode_value(record.value, 1 << 20)
        if type(decoded) is dict:
            if typed_record(decoded, record) is not None:
                return
            decoded = classify(decoded)
    except DecodeError:
        return
    for raw in decoded.events:
        try:
            normalize(raw, record)
        except DecodeError:
            pass


DECODE_AND_NORMALISE: dict[str, Callable[[SourceRecord], Any]] = {
    "orjson + general": orjson_general,
    "msgspec dict + general": msgspec_general,
    "msgspec Struct (not exact)": struct_forms.document,
    "msgspec dict + typed pass": typed_pass,
}


def lenient_and_hostile() -> list[bytes]:
    """Records the typed pass leaves to the general path (leniently read, or faulty)."""
    track = {"type": "track", "event": "E", "userId": "u", "messageId": "m",
             "timestamp": "2026-11-22T20:31:04.123Z", "context": {"ip": "1.2.3.4"}}
    access = {"requestId": "r", "ip": "1.2.3.4", "requestTime": "22/Nov/2026:20:31:04 +0000",
              "httpMethod": "GET", "status": "200", "responseLength": "-",
              "identity": {"apiKeyId": "-"}, "apiId": "api"}
    values = [
        orjson.dumps(access),
        orjson.dumps({**track, "userId": 123456789012345678901234567890 % 2**63}),
        BIG,
        orjson.dumps({**track, "timestamp": "2026-11-22T21:31:04+01:00"}),
        orjson.dumps({**track, "messageId": None}),
        orjson.dumps({"batch": [track, track], "sentAt": "2026-11-22T20:31:05Z"}),
        orjson.dumps({"Record": {"Data": base64.b64encode(orjson.dumps(track)).decode()}}),
        b"\xef\xbb\xbf" + orjson.dumps(track),
        orjson.dumps(track)[:-1] + b',"x":"\\ud800"}',
        orjson.dumps(track)[:-1] + b',"userId":"v","userId":"w"}',
        orjson.dumps({**track, "timestamp": "yesterday"}),
    ]
    return values + [sample.value or b"" for sample in malformed_records(nonce=1,
                                                                        oversize_bytes=2000)]


def _per_record(work: Callable[[Any], Any], items: list[Any]) -> float:
    gc.disable()
    try:
        start = time.process_time()
        for item in items:
            work(item)
        return (time.process_time() - start) / len(items) * 1e6
    finally:
        gc.enable()


def _records(values: list[bytes]) -> list[SourceRecord]:
    return [SourceRecord(None, value, KafkaPosition("bench", 0, offset), KAFKA_MS)
            for offset, value in enumerate(values)]


def measure(events: int, rounds: int = ROUNDS) -> dict[str, float]:
    """Microseconds per record (or document) of each variant, best of `rounds`."""
    values = [value for _, value in bench_events(events)]
    benchmark = _records(values)
    hostile = _records(lenient_and_hostile() * max(1, events // 200))
    docs = documents(min(events, 20_000))
    variants: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {}
    for name, work in DECODE_AND_NORMALISE.items():
        variants[f"{name}: benchmark"] = (work, benchmark)
    for name, work in DECODE_AND_NORMALISE.items():
        variants[f"{name}: lenient/hostile"] = (work, hostile)
    variants |= {
        "orjson.loads": (orjson.loads, values),
        "json_codec.loads": (json_codec.loads, values),
        "decode_record": (lambda v: decode_record(v, 1 << 20), values),
        "orjson.dumps of a document": (orjson.dumps, docs),
        "json_codec.dumps of a document": (json_codec.dumps, docs),
        "json_codec.loads, 30-digit ints": (json_codec.loads, [BIG] * 2000),
        "json_codec.dumps, 30-digit ints": (json_codec.dumps, [json_codec.loads(BIG)] * 2000),
    }
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, (work, items) in variants.items():
            best[name] = min(best[name], _per_record(work, items))
    return best


def struct_agreement(events: int) -> tuple[int, int]:
    """(documents the Struct prototype made equal to the worker's, records) on the benchmark."""
    same = 0
    records = _records([value for _, value in bench_events(events)])
    for record in records:
        decoded = decode_value(record.value, 1 << 20)
        assert type(decoded) is dict
        if struct_forms.document(record) == typed_record(decoded, record):
            same += 1
    return same, len(records)


def main() -> None:
    events = 20_000
    rounds = ROUNDS
    if "--events" in sys.argv:
        events = int(sys.argv[sys.argv.index("--events") + 1])
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
    results = measure(events, rounds)
    baseline = {kind: results[f"msgspec dict + general: {kind}"]
                for kind in ("benchmark", "lenient/hostile")}
    for name, micros in results.items():
        kind = name.rpartition(": ")[2]
        ratio = f"  {baseline[kind] / micros:4.2f}x" if kind in baseline else ""
        print(f"{name:<45} {micros:7.3f} µs{ratio}")
    same, total = struct_agreement(min(events, 5000))
    print(f"Struct prototype: the worker's document for {same:,} of {total:,} benchmark records")


if __name__ == "__main__":
    main()
