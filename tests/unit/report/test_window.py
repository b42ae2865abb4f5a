from datetime import UTC, datetime, timedelta

import pytest

from worker.report.window import Window, WindowError, parse_moment, window_from_options

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T05:00:00Z", datetime(2026, 11, 1, 5, tzinfo=UTC)),
    ("2026-11-01T07:00:00+02:00", datetime(2026, 11, 1, 5, tzinfo=UTC)),
    ("now", NOW),
    ("30d", NOW - timedelta(days=30)),
    ("12h", NOW - timedelta(hours=12)),
    ("90m", NOW - timedelta(minutes=90)),
    ("2w", NOW - timedelta(weeks=2)),
])
def test_moments_are_iso_times_dates_now_or_durations_before_now(
    text: str, expected: datetime
) -> None:
    assert parse_moment(text, "--since", NOW) == expected


def test_an_unreadable_moment_names_the_option_and_the_forms() -> None:
    with pytest.raises(WindowError, match=r"--until 'yesterday' is not a time.*30d"):
        parse_moment("yesterday", "--until", NOW)


def test_the_default_window_is_the_last_seven_days() -> None:
    assert window_from_options(None, None, NOW) == Window(NOW - timedelta(days=7), NOW)


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(WindowError, match="--since .* must come before --until"):
        window_from_options("2026-11-02", "2026-11-01", NOW)


@pytest.mark.parametrize(("span", "bucket"), [
    (timedelta(hours=2), timedelta(minutes=5)),
    (timedelta(days=1), timedelta(minutes=15)),
    (timedelta(days=7), timedelta(hours=1)),
    (timedelta(days=31), timedelta(hours=6)),
    (timedelta(days=365), timedelta(days=7)),
])
def test_charts_over_time_keep_at_most_200_buckets(span: timedelta, bucket: timedelta) -> None:
    window = Window(NOW - span, NOW)
    assert window.bucket == bucket
    assert window.bucket_sql == f"INTERVAL {int(bucket.total_seconds())} SECOND"
