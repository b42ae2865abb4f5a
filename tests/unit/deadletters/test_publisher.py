from datetime import UTC, datetime

from worker.deadletters.publisher import dead_letter_headers
from worker.events.records import DeadLetter, KafkaPosition, SourceRecord

RECORD = SourceRecord(
    key=b"k", value=b"{bad", position=KafkaPosition("events", 3, 77), timestamp_ms=1700,
    headers=(("trace", b"abc"), ("sluice.stage", b"spoofed")),
)


def test_headers_carry_stage_error_position_time_and_attempts() -> None:
    letter = DeadLetter(record=RECORD, stage="decode", error_class="InvalidJson",
                        message="the record is not valid JSON", retriable=False, attempts=1)
    headers = dict(dead_letter_headers(letter, datetime(2026, 11, 22, 10, 0, tzinfo=UTC)))
    assert headers == {
        "trace": b"abc",
        "sluice.stage": b"decode",
        "sluice.error.class": b"InvalidJson",
        "sluice.error.message": b"the record is not valid JSON",
        "sluice.retriable": b"false",
        "sluice.source.topic": b"events",
        "sluice.source.partition": b"3",
        "sluice.source.offset": b"77",
        "sluice.source.timestamp": b"1700",
        "sluice.failed_at": b"2026-11-22T10:00:00.000+00:00",
        "sluice.attempts": b"1",
    }


def test_batch_index_and_event_id_are_added_when_known_and_message_is_capped() -> None:
    letter = DeadLetter(record=RECORD, stage="counting", error_class="SinkRejected",
                        message="x" * 5000, retriable=True, attempts=4, batch_index=2,
                        event_id="e-1")
    headers = dict(dead_letter_headers(letter, datetime.now(UTC)))
    assert headers["sluice.batch_index"] == b"2"
    assert headers["sluice.event_id"] == b"e-1"
    assert headers["sluice.retriable"] == b"true"
    assert len(headers["sluice.error.message"]) == 2000


def test_a_replayed_records_lineage_is_kept_and_the_worker_is_named() -> None:
    replayed = SourceRecord(None, b"{bad", KafkaPosition("events", 0, 9), headers=(
        ("sluice.replay.count", b"1"), ("sluice.first_failure.stage", b"decode"),
        ("sluice.first_failure.class", b"InvalidJson"), ("sluice.replay.event_id", b"e-1"),
        ("sluice.stage", b"decode"), ("sluice.value_truncated", b"true")))
    letter = DeadLetter(record=replayed, stage="elasticsearch", error_class="SinkRejected",
                        message="mapping conflict", retriable=False)
    headers = dead_letter_headers(letter, datetime.now(UTC),
                                  {"worker.group": "sluice", "worker.host": "pod-1"})
    named = dict(headers)
    assert named["sluice.replay.count"] == b"1"
    assert named["sluice.first_failure.class"] == b"InvalidJson"
    assert named["sluice.replay.event_id"] == b"e-1"
    # This failure's own headers replace the earlier failure's, once each.
    assert [name for name, _ in headers].count("sluice.stage") == 1
    assert named["sluice.stage"] == b"elasticsearch" and "sluice.value_truncated" not in named
    assert (named["sluice.worker.group"], named["sluice.worker.host"]) == (b"sluice", b"pod-1")
