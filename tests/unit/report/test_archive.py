from datetime import UTC, datetime

import pytest

from worker.report.archive import ArchiveObject, directory_span, select_objects
from worker.report.window import Window

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
DAY = datetime(2026, 11, 22, tzinfo=UTC)
DAY_MS = int(DAY.timestamp() * 1000)


@pytest.mark.parametrize(("key", "span"), [
    ("logs/year=2026/month=11/day=22/hour=10/events+0+000000000000+000000000009.ndjson.gz",
     (HOUR, HOUR.replace(hour=11))),
    ("year=2026/month=11/day=22/events+0+000000000000+000000000009.parquet",
     (DAY, DAY.replace(day=23))),
    (f"logs/segment-logs/src-1/{DAY_MS}/events+1+000000000000+000000000009.ndjson.gz",
     (DAY, DAY.replace(day=23))),
    ("archive/2026-11-22/events+0+000000000000+000000000009.ndjson.gz",
     (DAY, DAY.replace(day=23))),
    ("by-type/track/events+0+000000000000+000000000009.ndjson.gz", None),
])
def test_an_objects_directory_says_which_time_it_holds(
    key: str, span: tuple[datetime, datetime] | None
) -> None:
    assert directory_span(key) == span


def test_objects_outside_the_window_are_not_read_and_csv_objects_are_counted() -> None:
    listing = [
        ArchiveObject("year=2026/month=11/day=22/hour=09/t+0+0+1.ndjson.gz", 10),
        ArchiveObject("year=2026/month=11/day=22/hour=10/t+0+2+3.ndjson.gz", 10),
        ArchiveObject("year=2026/month=11/day=22/hour=10/t+1+0+5.parquet", 20),
        ArchiveObject("year=2026/month=11/day=22/hour=10/t+2+0+5.csv.gz", 20),
        ArchiveObject(f"segment-logs/s/{DAY_MS}/t+0+9+9.ndjson.gz", 5),
        ArchiveObject("custom/track/t+0+9+9.ndjson.gz", 5),
        ArchiveObject("year=2026/month=11/day=22/hour=10/notes.txt", 1),
    ]
    selection = select_objects(listing, Window(HOUR, HOUR.replace(hour=11)))
    assert [item.key for item in selection.objects] == [
        listing[1].key, listing[2].key, listing[4].key, listing[5].key]
    assert (selection.skipped_csv, selection.listed, selection.bytes) == (1, 7, 40)
