"""The report's time range, read from the command line, and the time bucket its charts use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# The widths a chart over time may use, smallest first: the first that keeps a chart at
# MAX_BUCKETS points or fewer is chosen (a month: 6 hours, 120 points a series).
BUCKETS = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3),
           timedelta(hours=6), timedelta(hours=12), timedelta(days=1), timedelta(days=7))
MAX_BUCKETS = 200

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class WindowError(ValueError):
    """A time option the report cannot read; the message names the option and the forms."""


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open range [since, until) of the report, in UTC."""

    since: datetime
    until: datetime

    @property
    def bucket(self) -> timedelta:
        """The width of a time bucket in charts over time."""
        span = self.until - self.since
        for width in BUCKETS:
            if span / width <= MAX_BUCKETS:
                return width
        return BUCKETS[-1]

    @property
    def bucket_sql(self) -> str:
        """The bucket as a DuckDB interval literal."""
        return f"INTERVAL {int(self.bucket.total_seconds())} SECOND"

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) shares a moment with the window."""
        return start < self.until and end > self.since


def parse_moment(text: str, option: str, now: datetime) -> datetime:
    """An ISO-8601 time or date (UTC unless it says otherwise), `now`, or a duration before
    `now` such as `30d`, `12h`, `90m`, `2w`."""
    text = text.strip()
    if text == "now":
        return now
    duration = _DURATION.match(text)
    if duration:
        return now - timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(
            f"{option} {text!r} is not a time: give an ISO-8601 time or date "
            "(2026-11-01, 2026-11-22T10:00:00Z), `now`, or a duration before now (30d, 12h, "
            "90m, 2w)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_from_options(since: str | None, until: str | None,
                        now: datetime | None = None) -> Window:
    """The window of `--since` / `--until`: until defaults to now, since to 7 days before until."""
    now = now or datetime.now(UTC)
    end = parse_moment(until, "--until", now) if until else now
    start = parse_moment(since, "--since", now) if since else end - timedelta(days=7)
    if start >= end:
        raise WindowError(f"--since ({start.isoformat()}) must come before --until "
                          f"({end.isoformat()})")
    return Window(start, end)
