"""The retry window: a retried event (same producer id, same partition) reaches no sink twice."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.pipeline.test_wiring import RecordingDeadLetters
from worker.config import load_settings
from worker.events.records import KafkaPosition, SourceRecord
from worker.pipeline.dedupe import DedupeWindow
from worker.pipeline.wiring import Pipeline
from worker.sinks.counting import CountingSink

BASE_MS = 1_795_000_000_000


def _record(events: list[dict], offset: int, partition: int = 0, at_ms: int = BASE_MS,
            headers: tuple = ()) -> SourceRecord:
    value = orjson.dumps(events[0] if len(events) == 1 else {"batch": events})
    return SourceRecord(None, value, KafkaPosition("events", partition, offset), at_ms, headers)


def _track(message_id: str | None, user: str = "u1") -> dict:
    event = {"type": "track", "event": "Bought", "userId": user}
    if message_id:
        event["messageId"] = message_id
    return event


def _pipeline(**settings: object) -> tuple[Pipeline, CountingSink, RecordingDeadLetters]:
    dead_letters = RecordingDeadLetters()
    pipeline = Pipeline(load_settings(**settings), dead_letters, {}.get)  # type: ignore[arg-type]
    sink = pipeline.add_sink(lambda outcomes: CountingSink(outcomes, max_batch=1000,
                                                           max_age_seconds=60))
    pipeline.assign([("events", 0), ("events", 1)])
    return pipeline, sink, dead_letters


async def test_a_retried_batch_reaches_the_sinks_once_and_is_acknowledged() -> None:
    pipeline, sink, _ = _pipeline()
    acked: list[int] = []
    batch = [_track("m1"), _track("m2"), _track("m3")]
    await pipeline.submit(_record(batch, 0), lambda: acked.append(0))
    await pipeline.submit(_record(batch, 1, at_ms=BASE_MS + 30_000), lambda: acked.append(1))
    await sink.flush()
    assert sink.counts["track"] == 3 and acked == [0, 1]
    assert pipeline.progress.counts["duplicates"] == 3 and pipeline.dedupe.duplicates == 3


async def test_events_without_a_producer_id_are_never_taken_for_retries() -> None:
    pipeline, sink, _ = _pipeline()
    await pipeline.submit(_record([_track(None)], 0))
    await pipeline.submit(_record([_track(None)], 1))  # same content, derived ids differ
    await sink.flush()
    assert sink.counts["track"] == 2


async def test_the_window_is_per_partition_and_in_kafka_time() -> None:
    pipeline, sink, _ = _pipeline(dedupe_window=60)
    await pipeline.submit(_record([_track("m1")], 0))
    await pipeline.submit(_record([_track("m1")], 0, partition=1))  # another partition: kept
    await pipeline.submit(_record([_track("m1")], 1, at_ms=BASE_MS + 59_000))  # dropped
    await pipeline.submit(_record([_track("m1")], 2, at_ms=BASE_MS + 200_000))  # past: kept
    await sink.flush()
    assert sink.counts["track"] == 3


async def test_a_replayed_record_is_never_checked_against_the_window() -> None:
    pipeline, sink, _ = _pipeline()
    await pipeline.submit(_record([_track("m1")], 0))
    replayed = _record([_track("m1")], 1, headers=(("sluice.replayed_from", b"events.dlq/0/4"),))
    await pipeline.submit(replayed)
    await sink.flush()
    assert sink.counts["track"] == 2


def test_consuming_a_partition_again_starts_its_window_again() -> None:
    # A recovery consumes from an earlier offset: a first copy must not be taken for a retry
    # of itself.
    window = DedupeWindow(600, max_ids=100)
    first = _record([_track("m1")], 5)
    assert not window.seen(window.begin(first), "m1")
    assert not window.seen(window.begin(first), "m1")  # offset 5 again: a fresh window
    assert window.seen(window.begin(_record([_track("m1")], 6)), "m1")


async def test_a_zero_window_switches_it_off() -> None:
    pipeline, sink, _ = _pipeline(dedupe_window=0)
    await pipeline.submit(_record([_track("m1")], 0))
    await pipeline.submit(_record([_track("m1")], 1))
    await sink.flush()
    assert sink.counts["track"] == 2


def test_the_window_holds_at_most_max_ids_a_partition() -> None:
    window = DedupeWindow(600, max_ids=100)
    for offset in range(1000):
        record = _record([_track(f"m{offset}")], offset, at_ms=BASE_MS + offset * 1000)
        assert not window.seen(window.begin(record), f"m{offset}")
    assert window.ids_held() <= 100
    assert window.seen(window.begin(_record([_track("m999")], 1000, at_ms=BASE_MS + 999_500)),
                       "m999")


def test_an_id_is_caught_in_any_slice_and_forgotten_with_its_slice() -> None:
    # 600 s in eight slices of 75 s: "old" is first seen in the first slice, checked from a
    # later one, and forgotten when its slice leaves the window (not before).
    window = DedupeWindow(600, max_ids=1000)
    assert not window.seen(window.begin(_record([_track("old")], 0)), "old")
    for offset in range(1, 8):
        record = _record([_track(f"m{offset}")], offset, at_ms=BASE_MS + offset * 75_000)
        assert not window.seen(window.begin(record), f"m{offset}")
    assert window.seen(window.begin(_record([], 8, at_ms=BASE_MS + 599_000)), "old")
    assert window.ids_held() == 8
    late = window.begin(_record([], 9, at_ms=BASE_MS + 600_000))
    assert window.ids_held() == 7
    assert not window.seen(late, "old")
    assert window.seen(late, "m7")


@pytest.mark.parametrize("events", [[_track("m1"), _track("m1")]])
async def test_a_copy_within_one_batch_record_is_a_retry_too(events: list[dict]) -> None:
    pipeline, sink, _ = _pipeline()
    await pipeline.submit(_record(events, 0))
    await sink.flush()
    assert sink.counts["track"] == 1
