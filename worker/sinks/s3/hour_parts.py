"""Hour parts (SLUICE_S3_PUBLISH=hourly): where they wait, and which groups of them are due.

An hour part is published under ``<prefix>_sluice/hour-parts/<topic>/<partition>/<hour>/`` +
its query-layout key, and listed in the partition's marker (``hour_parts``) with the header
row it was written with, if its format has one (CSV: ``hour_part_headers``). The merger
(``worker.sinks.s3.hourly``) merges a group of them into objects of the query layout: the parts
of one (hour, directory) of one format and, for CSV, one header row, so that no row of an
object is ever read under another part's columns.

A group is due once its hour has ended (plus SLUICE_S3_HOUR_CLOSE_GRACE), no open part of that
hour is left, and the partition has moved on to a later hour or no part of the group has come
for SLUICE_S3_PART_MAX_AGE seconds (``DueGroups``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.sinks.base import PartitionKey
from worker.sinks.s3.markers import Marker
from worker.sinks.s3.merge import key_format
from worker.sinks.s3.naming import HourSlot

HOUR_PARTS = "_sluice/hour-parts/"
HOUR_FORMAT = "%Y-%m-%dT%H"


def hour_part_key(prefix: str, topic: str, partition: int, slot: HourSlot, final_key: str) -> str:
    """Where an hour part of `final_key` (a query-layout key) waits for its merge."""
    return (f"{prefix}{HOUR_PARTS}{topic}/{partition}/{slot.start.strftime(HOUR_FORMAT)}/"
            f"{final_key[len(prefix):]}")


def is_hour_part(prefix: str, key: str) -> bool:
    return key.startswith(prefix + HOUR_PARTS)


def split_hour_part(prefix: str, key: str) -> tuple[str, str]:
    """(hour, query-layout directory with the prefix) of an hour part's key."""
    rest = key[len(prefix + HOUR_PARTS):]
    _topic, _partition, hour, layout_key = rest.split("/", 3)
    return hour, prefix + layout_key.rsplit("/", 1)[0] + "/" if "/" in layout_key else prefix


def hour_end_epoch(hour: str) -> float:
    return datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=UTC).timestamp() + 3600


def with_hour_parts(prefix: str, marker: Marker, keys: Iterable[str], header: str = "") -> Marker:
    """The marker with these published keys added to its hour parts (other keys ignored), each
    recorded with `header`, the header row its part was written with ("" for none)."""
    return marker.with_hour_parts([key for key in keys if is_hour_part(prefix, key)], header)


@dataclass(frozen=True)
class HourGroup:
    """Hour parts that merge together: one (hour, directory), one format, one header row.
    ``header`` is None for CSV parts an earlier version listed without their header."""

    hour: str
    directory: str
    form: str
    header: str | None
    keys: tuple[str, ...]


def group_of(prefix: str, marker: Marker, key: str) -> tuple[str, str, str, str | None]:
    """(hour, directory, format, header row) of an hour part listed in `marker`."""
    form = key_format(key)
    header = marker.hour_part_headers.get(key)
    if header is None and form != "csv.gz":
        header = ""  # a format without a header row: nothing to record, nothing unknown
    return (*split_hour_part(prefix, key), form, header)


class DueGroups:
    """Which groups of a partition's hour parts are due for a merge; remembers since when each
    group has been as it is (the quiet period)."""

    def __init__(self, prefix: str, grace: float, quiet: float) -> None:
        self.prefix = prefix
        self.grace = grace
        self.quiet = quiet
        # (partition, group without its keys) -> (its hour parts when last seen, since when).
        self._seen: dict[tuple[PartitionKey, tuple[str, str, str, str | None]],
                         tuple[tuple[str, ...], float]] = {}

    def due(self, key: PartitionKey, marker: Marker, open_parts: dict[str, Any], now: float,
            now_monotonic: float) -> list[HourGroup]:
        """The groups of `marker`'s hour parts due now; `open_parts` are the partition's open
        parts by directory (``.slot``: their hour)."""
        groups: dict[tuple[str, str, str, str | None], list[str]] = {}
        parked = {part for entry in marker.parked for part in entry.plan.parts}
        for part in marker.hour_parts:
            if part not in parked:  # set aside with its plan (``worker.sinks.s3.parking``)
                groups.setdefault(group_of(self.prefix, marker, part), []).append(part)
        opened = {(part.slot.start.strftime(HOUR_FORMAT), self.prefix + directory)
                  for directory, part in open_parts.items()}
        hours = {hour for hour, _, _, _ in groups} | {hour for hour, _ in opened}
        due = []
        for name, keys in sorted(groups.items(), key=lambda item: str(item[0])):
            hour, directory, form, header = name
            signature = tuple(keys)
            seen = self._seen.get((key, name))
            if seen is None or seen[0] != signature:
                self._seen[(key, name)] = seen = (signature, now_monotonic)
            if now < hour_end_epoch(hour) + self.grace or (hour, directory) in opened:
                continue
            moved_on = any(later > hour for later in hours)
            if moved_on or now_monotonic - seen[1] >= self.quiet:
                due.append(HourGroup(hour, directory, form, header, signature))
        return due

    def planned(self, key: PartitionKey, group: HourGroup) -> None:
        """The group is planned (or parked): forget when it was last seen."""
        self._seen.pop((key, (group.hour, group.directory, group.form, group.header)), None)
