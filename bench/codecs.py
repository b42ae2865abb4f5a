"""Codecs on the benchmark's events: JSON encoders of normalised documents, gzip backends.

`python -m bench.codecs [--events N]` decodes and normalises N benchmark events (bench/events.py,
enriched from the demo catalog) as the worker does, then measures, best of a few rounds:

- JSON encoding of the documents: orjson and msgspec, one document at a time (what the pipeline
  does per event) and as NDJSON lines of a whole batch;
- gzip of whole buffers of NDJSON lines (the S3 sink's part contents) with python-isal (igzip,
  levels 0-3), zlib-ng (levels 1 and 6) and the standard library's zlib (levels 1 and 6), and,
  for comparison, stdlib gzip level 6 written one event at a time (today's S3 parts);
- Parquet parts (SLUICE_S3_FORMAT=parquet): the documents converted to the schema's Arrow
  columns (worker/events/parquet_schema.py), then written with each compression codec in row groups
  of the default size, as the S3 sink's Parquet parts are.

It prints MB/s of input, µs per event and the compression ratio (input / output bytes; for
Parquet, NDJSON bytes / Parquet bytes, so the ratios compare with gzip's), and bytes per event.
"""

from __future__ import annotations

import gzip
import io
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from isal import igzip
from zlib_ng import gzip_ng

from bench.documents import documents

# Events per compressed buffer: about 0.6 MiB of NDJSON, the order of an S3 part's spool chunk.
BUFFER_EVENTS = 1000
ROUNDS = 3


def best_seconds(work: Callable[[], Any], rounds: int = ROUNDS) -> float:
    """The fastest of a few runs: the machine is shared, the minimum is the codec's own cost."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def row(name: str, seconds: float, events: int, in_bytes: int, out_bytes: int | None) -> str:
    ratio = f"{in_bytes / out_bytes:6.2f}" if out_bytes else "     -"
    return (f"{name:<38} {in_bytes / seconds / 1e6:9.1f} {seconds * 1e6 / events:9.2f} {ratio}")


def json_rows(docs: list[dict[str, Any]]) -> list[str]:
    encoder = msgspec.json.Encoder()
    n = len(docs)
    size = sum(len(orjson.dumps(d)) for d in docs)
    out = []
    for name, work in (
        ("orjson.dumps per document", lambda: [orjson.dumps(d) for d in docs]),
        ("msgspec encode per document", lambda: [encoder.encode(d) for d in docs]),
        ("orjson NDJSON of a batch", lambda: b"".join(
            [orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE) for d in docs])),
        ("msgspec encode_lines of a batch", lambda: encoder.encode_lines(docs)),
    ):
        out.append(row(name, best_seconds(work), n, size, None))
    return out


def per_event_gzip(lines: list[bytes], level: int) -> int:
    """Today's S3 part: a GzipFile written one event at a time."""
    sink = io.BytesIO()
    with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=level) as out:
        for line in lines:
            out.write(line)
    return sink.tell()


def gzip_rows(docs: list[dict[str, Any]]) -> list[str]:
    lines = [orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE) for d in docs]
    buffers = [b"".join(lines[i:i + BUFFER_EVENTS]) for i in range(0, len(lines), BUFFER_EVENTS)]
    size = sum(map(len, buffers))
    backends: list[tuple[str, Callable[[bytes], bytes]]] = [
        *((f"isal igzip level {lv}", lambda b, lv=lv: igzip.compress(b, lv)) for lv in range(4)),
        *((f"zlib-ng gzip level {lv}", lambda b, lv=lv: gzip_ng.compress(b, lv)) for lv in (1, 6)),
        *((f"stdlib gzip level {lv}", lambda b, lv=lv: gzip.compress(b, lv)) for lv in (1, 6)),
    ]
    out = []
    for name, compress in backends:
        compressed = sum(len(compress(b)) for b in buffers)
        seconds = best_seconds(lambda compress=compress: [compress(b) for b in buffers])
        out.append(row(f"{name}, whole buffers", seconds, len(lines), size, compressed))
    seconds = best_seconds(lambda: per_event_gzip(lines, 6))
    out.append(row("stdlib gzip level 6, per-event writes", seconds, len(lines), size,
                   per_event_gzip(lines, 6)))
    return out


def parquet_rows(docs: list[dict[str, Any]]) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from worker.config.s3 import S3ParquetCompression, S3Settings
    from worker.events.parquet_schema import SCHEMA, record_batch

    size = sum(len(orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE)) for d in docs)
    chunks = [docs[i:i + BUFFER_EVENTS] for i in range(0, len(docs), BUFFER_EVENTS)]
    out = [row("conversion to Arrow columns", best_seconds(
        lambda: [record_batch(chunk) for chunk in chunks]), len(docs), size, None)]
    batches = [record_batch(chunk) for chunk in chunks]
    row_group_bytes = S3Settings.model_fields["s3_parquet_row_group_bytes"].default

    def write(codec: str) -> int:
        sink = io.BytesIO()
        with pq.ParquetWriter(sink, SCHEMA, compression=codec) as writer:
            group: list[pa.RecordBatch] = []
            for batch in batches:
                group.append(batch)
                if sum(b.nbytes for b in group) >= row_group_bytes:
                    writer.write_table(pa.Table.from_batches(group))
                    group = []
            if group:
                writer.write_table(pa.Table.from_batches(group))
        return len(sink.getvalue())

    for codec in S3ParquetCompression:
        written = write(codec.value)
        seconds = best_seconds(lambda codec=codec: write(codec.value))
        out.append(row(f"parquet {codec.value}, {written / len(docs):.0f} bytes/event", seconds,
                       len(docs), size, written))
    return out


def main(argv: list[str]) -> None:
    """Print the JSON and gzip tables for --events N benchmark events (default 20,000)."""
    count = int(argv[argv.index("--events") + 1]) if "--events" in argv else 20_000
    docs = documents(count)
    mean = sum(len(orjson.dumps(d)) for d in docs) / len(docs)
    print(f"{len(docs)} documents, {mean:.0f} bytes of JSON each on average")
    header = f"{'':<38} {'MB/s in':>9} {'µs/event':>9} {'ratio':>6}"
    print(f"\nJSON encoding\n{header}")
    print("\n".join(json_rows(docs)))
    print(f"\ngzip of NDJSON ({BUFFER_EVENTS} events per buffer)\n{header}")
    print("\n".join(gzip_rows(docs)))
    print(f"\nParquet (after conversion; ratio against NDJSON)\n{header}")
    print("\n".join(parquet_rows(docs)))


if __name__ == "__main__":
    main(sys.argv[1:])
