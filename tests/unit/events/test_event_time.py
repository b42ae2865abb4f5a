"""The accepted event-time window: an event's own time files it only when it is plausible."""

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest

from worker.config import load_settings
from worker.events.event_time import EventTimeWindow
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.elasticsearch.naming import IndexNamer
from worker.sinks.elasticsearch.sink import ElasticsearchSink

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
KAFKA_MS = int(datetime(2026, 11, 22, 20, 30, tzinfo=UTC).timestamp() * 1000)
DAY = 86400.0


def _record(timestamp_ms: int | None = KAFKA_MS) -> SourceRecord:
    return SourceRecord(None, b"{}", KafkaPosition("events", 0, 7), timestamp_ms)


def _window() -> EventTimeWindow:
    return EventTimeWindow(max_past=30 * DAY, max_future=DAY, clock=lambda: NOW)


@pytest.mark.parametrize("stamp", [
    "2026-11-22T20:30:00.000Z", "2026-10-24T00:00:00.000Z", "2026-11-23T20:29:59.999Z"])
def test_an_event_time_inside_the_window_files_the_event(stamp: str) -> None:
    assert _window().filing_stamp(stamp, _record()) == stamp


@pytest.mark.parametrize("stamp", [
    "9999-12-31T23:59:59.999Z", "1000-01-01T00:00:00.000Z", "2026-10-23T20:29:59.999Z",
    "2026-11-23T20:30:00.001Z"])
def test_an_event_time_outside_the_window_is_filed_by_the_kafka_timestamp(stamp: str) -> None:
    assert _window().filing_stamp(stamp, _record()) == "2026-11-22T20:30:00.000Z"


FAR = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp() * 1000)
AHEAD = KAFKA_MS + int(3 * DAY * 1000)  # three days ahead of NOW's Kafka time: beyond the window
CLOCKS = [NOW, NOW + DAY, NOW + 5 * DAY, NOW - 30 * DAY,
          datetime(9000, 1, 2, tzinfo=UTC).timestamp()]


@pytest.mark.parametrize("stamp", ["2026-11-22T20:30:00.000Z", "9999-12-31T23:59:59.999Z",
                                   "2026-11-25T20:30:00.000Z", "1970-01-01T00:00:00.000Z"])
@pytest.mark.parametrize("kafka_ms", [KAFKA_MS, AHEAD, FAR], ids=["now", "3-days-ahead", "9000"])
def test_where_an_event_is_filed_is_a_function_of_its_record_whatever_the_clock(
        stamp: str, kafka_ms: int) -> None:
    # A record consumed again a day (or years) later must land where the first pass put it:
    # the same S3 hour, the same daily index, never a second copy of its _id.
    filed = {EventTimeWindow(30 * DAY, DAY, clock=lambda now=now: now).filing_stamp(
        stamp, _record(kafka_ms)) for now in CLOCKS}
    assert len(filed) == 1, filed


def test_a_kafka_timestamp_far_ahead_files_by_itself() -> None:
    assert _window().filing_stamp("9000-01-01T00:00:00.000Z", _record(FAR)) == \
        "9000-01-01T00:00:00.000Z"
    assert _window().filing_stamp("2026-11-22T20:30:00.000Z", _record(FAR)) == \
        "9000-01-01T00:00:00.000Z"
    assert _window().reference_ms(_record(FAR)) == FAR


def test_a_negative_kafka_timestamp_is_no_reference() -> None:
    assert _window().reference_ms(_record(-1)) is None
    assert _window().filing_stamp("2020-01-01T00:00:00.000Z", _record(-1)) == \
        "2020-01-01T00:00:00.000Z"


def test_only_when_hours_close_looks_at_the_clock() -> None:
    window = _window()
    assert window.progress_ms(KAFKA_MS) == KAFKA_MS
    assert window.progress_ms(FAR) == int((NOW + DAY) * 1000)
    assert window.progress_ms(None) is None


def test_a_record_without_a_timestamp_keeps_the_event_time() -> None:
    assert _window().filing_stamp("2020-01-01T00:00:00.000Z", _record(None)) == \
        "2020-01-01T00:00:00.000Z"


def test_elasticsearch_names_the_index_of_a_bad_clock_by_the_kafka_timestamp() -> None:
    outcomes = SimpleNamespace(delivered=None, failed=None)
    sink = ElasticsearchSink(outcomes, load_settings())  # type: ignore[arg-type]
    document = {"event_id": "a", "type": "track", "timestamp": "9999-06-01T00:00:00.000Z"}
    event = Event("a", document, _record())
    action, body = sink._encode(event).splitlines()
    assert orjson.loads(action)["index"]["_index"] == "events-2026.11.22"
    # The document keeps the time the device sent.
    assert orjson.loads(body)["timestamp"] == "9999-06-01T00:00:00.000Z"
    inside = Event("b", {**document, "timestamp": "2026-11-21T23:00:00.000Z"}, _record())
    assert orjson.loads(sink._encode(inside).splitlines()[0])["index"]["_index"] == \
        "events-2026.11.21"


def test_one_record_is_indexed_into_one_daily_index_whatever_day_it_is_consumed() -> None:
    # A record stamped three days ahead, consumed now and again once its day has come.
    document = {"event_id": "a", "type": "track", "timestamp": "2026-11-25T20:30:00.000Z"}
    event = Event("a", document, _record(AHEAD))
    names = {IndexNamer("events-%Y.%m.%d", EventTimeWindow(30 * DAY, DAY, clock=lambda n=n: n))
             .for_event(event) for n in CLOCKS}
    assert names == {"events-2026.11.25"}
