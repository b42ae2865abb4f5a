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
