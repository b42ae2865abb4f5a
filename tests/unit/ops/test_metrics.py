"""The metric families the S3 sink adds, read from a sink that was never started."""

from __future__ import annotations

from dataclasses import replace

from worker.config import load_settings
from worker.ops.metrics import _s3
from worker.sinks.s3.filing import PartitionState
from worker.sinks.s3.markers import MergeOutput, MergePlan, ParkedMerge
from worker.sinks.s3.sink import S3Sink


def test_a_parked_merge_is_a_series_per_object_it_would_write(tmp_path) -> None:  # noqa: ANN001
    sink = S3Sink(None, load_settings(state_dir=tmp_path))  # type: ignore[arg-type]
    state = PartitionState(("events", 3), "me/1")
    outputs = (MergeOutput("logs/hour=09/events+3+0+9.ndjson.gz", ("a",)),
               MergeOutput("logs/hour=09/events+3+10+19.ndjson.gz", ("b",)))
    state.marker = replace(state.marker, parked=(ParkedMerge(
        MergePlan(outputs), "corrupt_part", "hour part b is truncated", "2026-11-20T12:00:00"),))
    sink._partitions[state.key] = state
    (family,) = [f for f in _s3(sink) if f.name == "sluice_s3_merges_parked"]
    assert sorted((s.labels["object_key"], s.labels["cause"], s.value)
                  for s in family.samples) == [
        (outputs[0].key, "corrupt_part", 1), (outputs[1].key, "corrupt_part", 1)]
    assert "logs/hour=09/events+3+0+9.ndjson.gz" in (sink.notice() or "")
