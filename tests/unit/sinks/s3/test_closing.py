"""When a partition's parts are due: hours close by the stream's progress, not the wall clock."""

import time
from datetime import UTC, datetime
from pathlib import Path

from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.s3.closing import IDLE_AFTER_MIN, StreamClock, due_directories, is_late
from worker.sinks.s3.formats.gzip_lines import OpenPart
from worker.sinks.s3.naming import HourSlot

GRACE = 60.0


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def _part(tmp_path: Path, hour: str, offsets: list[int]) -> OpenPart:
    part = OpenPart(tmp_path / f"{hour}.gz", f"hour={hour}/", HourSlot.of(f"{hour}:00:00.000Z"),
                    1)
    events = [Event(f"e{o}", {}, SourceRecord(None, b"", KafkaPosition("t", 0, o)))
              for o in offsets]
    part.add_many([b"{}\n"] * len(events), events)
    return part


def test_a_backlog_closes_an_hour_when_its_records_pass_the_end_plus_the_grace() -> None:
    clock = StreamClock()
    clock.advance("2026-11-20T10:59:00.000Z", int(_epoch("2026-11-20T10:59:00") * 1000))
    now = time.time()  # days later: by the wall clock every hour would be closed
    assert clock.stream_time(now, time.monotonic(), GRACE) == _epoch("2026-11-20T10:59:00")


def test_one_event_from_a_fast_clock_does_not_move_the_stream_past_its_records() -> None:
    clock = StreamClock()
    clock.advance("2026-11-21T10:00:00.000Z", int(_epoch("2026-11-20T10:30:00") * 1000))
    assert clock.stream_time(time.time(), time.monotonic(), GRACE) == \
        _epoch("2026-11-20T10:30:00")


def test_an_idle_partition_follows_the_wall_clock() -> None:
    clock = StreamClock()
    clock.advance("2026-11-20T10:59:00.000Z", None)
    now, later = time.time(), time.monotonic() + max(GRACE, IDLE_AFTER_MIN)
    assert clock.stream_time(now, later, GRACE) == now


def test_only_closed_parts_go_up_when_their_records_precede_the_open_ones(tmp_path: Path) -> None:
    parts = {"hour=2026-11-20T10/": _part(tmp_path, "2026-11-20T10", [0, 1, 2]),
             "hour=2026-11-20T11/": _part(tmp_path, "2026-11-20T11", [3, 4])}
    stream = _epoch("2026-11-20T11:01:00")
    assert due_directories(parts, stream, time.monotonic(), 300, GRACE) == [
        "hour=2026-11-20T10/"]
    assert due_directories(parts, stream - 2, time.monotonic(), 300, GRACE) == []


def test_interleaved_hours_go_up_together(tmp_path: Path) -> None:
    parts = {"hour=2026-11-20T10/": _part(tmp_path, "2026-11-20T10", [0, 4]),
             "hour=2026-11-20T11/": _part(tmp_path, "2026-11-20T11", [3])}
    stream = _epoch("2026-11-20T11:01:00")
    assert sorted(due_directories(parts, stream, time.monotonic(), 300, GRACE)) == sorted(parts)


def test_an_old_part_goes_up_with_all_the_others(tmp_path: Path) -> None:
    parts = {"hour=2026-11-20T10/": _part(tmp_path, "2026-11-20T10", [0])}
    assert due_directories(parts, 0.0, time.monotonic() + 301, 300, GRACE) == list(parts)


def test_a_late_part_waits_for_its_age_instead_of_uploading_the_partition_at_every_check(
    tmp_path: Path,
) -> None:
    """Events filed by their own time for an hour long closed (an offline phone) get a part of
    their own; it does not make the partition's current part go up at every check."""
    clock = StreamClock()
    clock.advance("2026-11-20T11:30:00.000Z", int(_epoch("2026-11-20T11:30:00") * 1000))
    late = _part(tmp_path, "2026-11-19T08", [7])
    assert is_late(late, clock, GRACE)
    assert not is_late(_part(tmp_path, "2026-11-20T11", [8]), clock, GRACE)
    assert not is_late(late, StreamClock(), GRACE)  # a partition's first part never is
    parts = {"hour=2026-11-20T11/": _part(tmp_path, "2026-11-20T11", [3, 8]),
             "hour=2026-11-19T08/": late}
    stream = clock.stream_time(time.time(), time.monotonic(), GRACE)
    assert due_directories(parts, stream, time.monotonic(), 300, GRACE,
                           late={"hour=2026-11-19T08/"}) == []
    assert sorted(due_directories(parts, stream, time.monotonic() + 301, 300, GRACE,
                                  late={"hour=2026-11-19T08/"})) == sorted(parts)
