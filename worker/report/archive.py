"""The S3 archive as the report reads it: which objects cover the range.

Objects are found by listing ``SLUICE_S3_PREFIX`` (Sluice's own ``_sluice/`` keys left out) and
kept when their directory's time overlaps the range: ``year=/month=/day=/hour=/`` (``hive``) is
an hour, ``segment-logs/<source>/<received_day>/`` (``segment``) and ``YYYY-MM-DD/`` (``{date}``)
a day; a directory that names no time (a template of your own) is always read. Whether an
object is an hourly merge or one of many parts makes no difference: each is a complete file.
gzip NDJSON (``.ndjson.gz``) and Parquet (``.parquet``) objects are read, in any mix; gzip CSV
objects hold the columns their writer chose (SLUICE_S3_CSV_COLUMNS), so they are counted and
skipped. (``fetch`` gets the objects' bytes, ``scan`` loads their documents.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from worker.config import Settings
from worker.report.window import Window
from worker.sinks.s3.client import make_client_context

NDJSON = ".ndjson.gz"
PARQUET = ".parquet"
CSV = ".csv.gz"

_HIVE = re.compile(r"(?:^|/)year=(\d{4})/month=(\d{2})/day=(\d{2})/(?:hour=(\d{2})/)?")
_RECEIVED_DAY = re.compile(r"(?:^|/)(\d{13})/")
_DATE = re.compile(r"(?:^|/)(\d{4})-(\d{2})-(\d{2})/")

class ArchiveError(Exception):
    """The archive cannot be read; the message names the setting to check."""


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    """An object of the archive the report reads."""

    key: str
    size: int

    @property
    def format(self) -> str | None:
        for extension in (NDJSON, PARQUET, CSV):
            if self.key.endswith(extension):
                return extension
        return None


@dataclass(frozen=True, slots=True)
class Selection:
    """The objects of the range, and what was left out."""

    objects: tuple[ArchiveObject, ...]
    skipped_csv: int
    listed: int

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.objects)


def directory_span(key: str) -> tuple[datetime, datetime] | None:
    """The time an object's directory stands for, or None when its directory names no time."""
    hive = _HIVE.search(key)
    if hive:
        year, month, day, hour = hive.groups()
        start = datetime(int(year), int(month), int(day), int(hour or 0), tzinfo=UTC)
        return start, start + (timedelta(hours=1) if hour else timedelta(days=1))
    received_day = _RECEIVED_DAY.search(key)
    if received_day:
        start = datetime.fromtimestamp(int(received_day.group(1)) / 1000, UTC)
        return start, start + timedelta(days=1)
    date = _DATE.search(key)
    if date:
        start = datetime(*(int(part) for part in date.groups()), tzinfo=UTC)
        return start, start + timedelta(days=1)
    return None


def select_objects(listing: Sequence[ArchiveObject], window: Window) -> Selection:
    """The listed objects a report of `window` must read."""
    chosen, csv = [], 0
    for item in listing:
        span = directory_span(item.key)
        if span is not None and not window.overlaps(*span):
            continue
        if item.format in (NDJSON, PARQUET):
            chosen.append(item)
        elif item.format == CSV:
            csv += 1
    return Selection(tuple(chosen), csv, len(listing))


async def list_archive(settings: Settings) -> list[ArchiveObject]:
    """Every object under SLUICE_S3_PREFIX but Sluice's own bookkeeping (``_sluice/``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    own = f"{settings.s3_prefix}_sluice/"
    found: list[ArchiveObject] = []
    try:
        async with make_client_context(settings) as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=settings.s3_bucket,
                                                 Prefix=settings.s3_prefix):
                found += [ArchiveObject(item["Key"], item["Size"])
                          for item in page.get("Contents", [])
                          if not item["Key"].startswith(own)]
    except (BotoCoreError, ClientError) as error:
        raise ArchiveError(
            f"cannot list s3://{settings.s3_bucket}/{settings.s3_prefix}: {error}; check "
            "SLUICE_S3_BUCKET, SLUICE_S3_PREFIX, SLUICE_S3_ENDPOINT_URL and the credentials "
            "(SLUICE_AWS_ACCESS_KEY_ID / SLUICE_AWS_SECRET_ACCESS_KEY or the AWS chain)"
        ) from error
    return found
