"""The same job written with Quix Streams: decode, add the id and receive time, enrich access
logs from the catalog, and write to its own Elasticsearch and S3 file sinks.

Configured by environment variables (BENCH_*) set by `bench.runners`. Prints
`FIRST <monotonic seconds>` when the first record reaches the transform, so the benchmark measures
from the first consume as it does for Sluice.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from quixstreams import Application
from quixstreams.sinks.community.elasticsearch import ElasticsearchSink
from quixstreams.sinks.community.file.formats import JSONFormat
from quixstreams.sinks.community.file.s3 import S3FileSink

CATALOG: dict[str, dict[str, Any]] = {
    entry["api_key_id"]: entry for entry in orjson.loads(os.environ["BENCH_CATALOG"])
}
first_seen = False
# librdkafka refuses a fetch answer above receive.message.max.bytes (default 100,000,000: "Invalid
# response size ... increase receive.message.max.bytes", retried every 10 s, nothing consumed).
# A real broker keeps answers near fetch.max.bytes; the local broker answers a fetch with
# everything the partitions hold (273 MB for 500,000 events on 4 partitions), whatever the
# client asks. So the limit is raised to what librdkafka accepts at most. The cost is memory:
# librdkafka reads each answer into one buffer, so the job's RSS grows by about a topic's size
# for the first fetch (and a consumer of a real broker would not pay it).
RECEIVE_MESSAGE_MAX_BYTES = 2_147_483_647


def transform(value: dict[str, Any]) -> dict[str, Any]:
    global first_seen  # a one-shot flag of this small script, not shared state
    if not first_seen:
        first_seen = True
        print(f"FIRST {time.monotonic()}", flush=True)
    document = dict(value)
    document["event_id"] = value.get("messageId") or value.get("requestId")
    document["received_at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    api_key_id = (value.get("identity") or {}).get("apiKeyId")
    entry = CATALOG.get(api_key_id) if api_key_id else None
    if entry:
        document.update(customer_id=entry["customer_id"], customer_name=entry["customer_name"],
                        usage_plan_id=entry["usage_plan_id"],
                        usage_plan_name=entry["usage_plan_name"], enriched=True)
    return document


def main() -> None:
    sinks = os.environ["BENCH_SINKS"].split(",")
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        commit_interval=float(os.environ["BENCH_COMMIT_INTERVAL"]),
        loglevel="WARNING",
        use_changelog_topics=False,
        consumer_extra_config={"receive.message.max.bytes": RECEIVE_MESSAGE_MAX_BYTES},
    )
    frame = app.dataframe(app.topic(os.environ["BENCH_TOPIC"], value_deserializer="json"))
    frame = frame.apply(transform)
    if "elasticsearch" in sinks:
        frame.sink(ElasticsearchSink(
            url=os.environ["BENCH_ES_URL"], index=os.environ["BENCH_ES_INDEX"],
            document_id_setter=lambda item: item.value["event_id"],
        ))
    if "s3" in sinks:
        frame.sink(S3FileSink(
            bucket=os.environ["BENCH_S3_BUCKET"], directory=os.environ["BENCH_S3_DIRECTORY"],
            format=JSONFormat(compress=True), endpoint_url=os.environ["BENCH_S3_ENDPOINT"],
            aws_access_key_id=os.environ["BENCH_S3_KEY"],
            aws_secret_access_key=os.environ["BENCH_S3_SECRET"], region_name="us-east-1",
        ))
    app.run()


if __name__ == "__main__":
    main()
