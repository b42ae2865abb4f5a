"""The marker's JSON: what a partition's next owner (or an earlier version) reads back."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from tests.support.memory_bucket import StreamBody
from worker.sinks.s3.markers import (
    Marker,
    MarkerStore,
    MergeOutput,
    MergePlan,
    ParkedMerge,
    Pending,
)


class _Client:
    """get_object and put_object of one marker object."""

    def __init__(self) -> None:
        self.stored = b""

    async def put_object(self, **arguments: Any) -> dict:
        self.stored = arguments["Body"]
        return {"ETag": '"1"'}

    async def get_object(self, **arguments: Any) -> dict:
        return {"Body": StreamBody(self.stored), "ETag": '"1"'}


async def test_the_columns_of_csv_hour_parts_and_parked_merges_survive_a_write_and_a_read() -> None:
    plan = MergePlan((MergeOutput("logs/x+0+000000000000+000000000009.csv.gz", ("a", "b")),),
                     header="id,type\n")
    marker = (Marker(10, Pending(20, ["c"], ["s/c"], header="id,user\n"))
              .with_hour_parts(["a", "b"], "id,type\n").with_hour_parts(["d"], "id,user\n")
              .with_hour_parts(["e.ndjson.gz"]))
    marker = replace(marker, parked=(ParkedMerge(
        plan, "corrupt_part", "hour part b is truncated", "2026-11-20T12:00:00+00:00",
        (("a", '"e1"'), ("b", None))),))
    client = _Client()
    store = MarkerStore(client, "bucket")
    await store.write("m.json", marker, None, "me")
    body = orjson.loads(client.stored)
    # The header once, with its parts (an earlier version ignores the field).
    assert body["hour_part_headers"] == {"id,type\n": ["a", "b"], "id,user\n": ["d"]}
    loaded = await store.load("m.json")
    assert loaded.state == marker.state
    assert loaded.hour_part_headers == {"a": "id,type\n", "b": "id,type\n", "d": "id,user\n"}
    assert loaded.pending is not None and loaded.pending.header == "id,user\n"
    # Merged (or parked) parts leave the list, and their headers with them.
    assert loaded.without_hour_parts(["a", "d"]).hour_part_headers == {"b": "id,type\n"}


async def test_a_marker_of_an_earlier_version_reads_with_no_columns_recorded() -> None:
    client = _Client()
    client.stored = orjson.dumps({"next_offset": 5, "owner": "old", "hour_parts": ["a"],
                                  "pending": {"next_offset": 7, "keys": ["b"], "staged": []}})
    loaded = await MarkerStore(client, "bucket").load("m.json")
    assert (loaded.hour_parts, loaded.hour_part_headers, loaded.parked) == (("a",), {}, ())
    assert loaded.pending is not None and loaded.pending.header == ""
