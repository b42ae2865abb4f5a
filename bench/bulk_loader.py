"""The Elasticsearch baseline: a minimal async loader sending Sluice's documents with `_bulk`.

What the ES-API server accepts when nothing but plain bulk requests reach it: the same documents
Sluice writes (bench/documents.py), the same index template, daily index names and `_id`s, the
same request shape as Sluice's sink (1000 documents a request, 4 requests in flight). The
documents and request bodies are built before the clock starts; only the requests are timed.

Run as `python -m bench.bulk_loader ES_URL INDEX_PATTERN TEMPLATE_NAME EVENTS`; prints one JSON
line with the monotonic times of the first request and of the last answer, the documents the
server accepted, the item errors and the process's peak RSS.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time

import aiohttp
import orjson

from bench.documents import documents
from worker.sinks.elasticsearch.naming import IndexNamer, index_template

DOCUMENTS_PER_REQUEST = 1000
REQUESTS_IN_FLIGHT = 4
NDJSON = {"Content-Type": "application/x-ndjson"}


def bulk_bodies(pattern: str, count: int) -> list[bytes]:
    """`_bulk` bodies of `count` documents: an index action with the event id, then the doc."""
    namer = IndexNamer(pattern)
    lines = []
    for document in documents(count):
        action = {"index": {"_index": namer(document["timestamp"]), "_id": document["event_id"]}}
        lines.append(orjson.dumps(action, option=orjson.OPT_APPEND_NEWLINE)
                     + orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE))
    return [b"".join(lines[i:i + DOCUMENTS_PER_REQUEST])
            for i in range(0, len(lines), DOCUMENTS_PER_REQUEST)]


async def load(url: str, pattern: str, template: str, count: int) -> dict[str, float]:
    """Install the template, send every body, return the timings and counts."""
    bodies = bulk_bodies(pattern, count)
    slots = asyncio.Semaphore(REQUESTS_IN_FLIGHT)
    accepted = errors = 0

    async def send(session: aiohttp.ClientSession, body: bytes) -> None:
        nonlocal accepted, errors
        async with slots, session.post(f"{url}/_bulk", data=body, headers=NDJSON,
                                       params={"filter_path": "errors,items.*.status"}) as answer:
            answer.raise_for_status()
            result = orjson.loads(await answer.read())
        for item in result.get("items", []):
            status = next(iter(item.values()))["status"]
            if 200 <= status < 300:
                accepted += 1
            else:
                errors += 1

    async with aiohttp.ClientSession() as session:
        async with session.put(f"{url}/_index_template/{template}",
                               json=index_template(pattern, data_stream=False)) as answer:
            answer.raise_for_status()
        first = time.monotonic()
        await asyncio.gather(*(send(session, body) for body in bodies))
        end = time.monotonic()
    status = open("/proc/self/status").read()
    peak_kib = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))
    return {"first": first, "end": end, "events": accepted, "errors": errors,
            "peak_rss_kib": peak_kib}


if __name__ == "__main__":
    url, pattern, template, events = sys.argv[1:5]
    result = asyncio.run(load(url.rstrip("/"), pattern, template, int(events)))
    print(orjson.dumps(result).decode(), flush=True)
