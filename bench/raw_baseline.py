"""The raw baseline: what Python can do at most here. A plain aiokafka consumer that only
decodes each record's JSON and gzips the records to a local file (igzip, as Sluice's S3
parts), nothing else.

Run as `python -m bench.raw_baseline BOOTSTRAP TOPIC GROUP EVENTS OUT_FILE GZIP_LEVEL`; prints one
JSON line with the monotonic times of the first record and of the durable end (file closed and
fsynced), the event count and its peak RSS.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer

from worker.sinks.s3.formats.compression import GzipWriter


async def consume(bootstrap: str, topic: str, group: str, expected: int, out_path: str,
                  level: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024,
                                # The local broker answers the first fetch with every record
                                # of the topic (about 270 MB for the long scenario), which
                                # the loop reads and parses while the heartbeat waits: with
                                # aiokafka's 10 s session the group expired the member on a
                                # busy machine, and the final commit failed.
                                session_timeout_ms=60_000, heartbeat_interval_ms=3_000)
    await consumer.start()
    first = 0.0
    count = 0
    try:
        # The same compressor and level as Sluice's S3 parts (worker.sinks.s3.formats.compression).
        with open(out_path, "wb") as raw, GzipWriter(raw, level) as out:
            while count < expected:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batches.values():
                    if not first:
                        first = time.monotonic()
                    for record in records:
                        orjson.loads(record.value)
                    out.write(b"\n".join(record.value for record in records) + b"\n")
                    count += len(records)
            out.close()
            raw.flush()
            os.fsync(raw.fileno())
        end = time.monotonic()
        await consumer.commit()
    finally:
        await consumer.stop()
    status = open("/proc/self/status").read()
    peak_kib = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))
    return {"first": first, "end": end, "events": count, "peak_rss_kib": peak_kib}


if __name__ == "__main__":
    bootstrap, topic, group, events, out_path, level = sys.argv[1:7]
    result = asyncio.run(consume(bootstrap, topic, group, int(events), out_path, int(level)))
    print(orjson.dumps(result).decode(), flush=True)
