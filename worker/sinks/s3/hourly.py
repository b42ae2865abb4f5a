"""Hourly publication (SLUICE_S3_PUBLISH=hourly): a partition's parts of an hour merged into one
object (or a few, at SLUICE_S3_MERGE_TARGET_BYTES) once the hour has closed.

How it goes
-----------
* **Hour parts.** Flushes run as in ``parts`` mode (staged, committed in the marker, published),
  but a part is published under ``<prefix>_sluice/hour-parts/<topic>/<partition>/<hour>/`` +
  its query-layout key instead of in the query layout; the marker's move past the part also adds
  it to ``hour_parts``. Records are acknowledged then, as in ``parts`` mode: the hour parts are
  as durable as any object.
* **When.** An hour of a partition is merged once it has ended (plus SLUICE_S3_HOUR_CLOSE_GRACE),
  no open part of that hour is left, and the partition has moved on to a later hour or no part of
  the hour has come for SLUICE_S3_PART_MAX_AGE seconds. A late event of a merged hour gets a part
  and later an object of its own: a merged object is never replaced.
* **Crash-safe, three steps.** (1) The plan (outputs, the parts of each, the CSV header) is
  written to the marker, conditionally like every marker write. (2) Each output that does not
  exist yet is built from its parts (downloaded to the spool, merged by stream) and uploaded; the
  bytes depend only on the parts, so whoever builds it writes the same object. (3) The parts are
  deleted, then the marker drops the plan and the merged parts. The partition's next owner (or
  this worker's next tick) finds a plan in the marker and finishes it from the step it reached:
  existing outputs are kept, missing ones built, the parts deleted. A reader of the query layout
  sees only merged objects, each event in one of them, none replaced later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from worker.sinks.base import PartitionKey
from worker.sinks.s3.markers import Marker, MarkerStore, MergeOutput, MergePlan, OwnershipLost
from worker.sinks.s3.merge import (
    COPY_CHUNK,
    CSV_EXTENSION,
    append_gzip,
    gzip_header,
    is_parquet,
    key_format,
    merge_parquet,
    merged_as,
    plan_outputs,
)
from worker.sinks.s3.naming import HourSlot, marker_key
from worker.sinks.s3.objects import S3Objects
from worker.sinks.s3.triage import status_of

log = logging.getLogger(__name__)

HOUR_PARTS = "_sluice/hour-parts/"
_HOUR_FORMAT = "%Y-%m-%dT%H"
# Fault injection for the tests (tests/e2e/test_hourly_merge_kills.py): the worker SIGKILLs
# itself at this named step of a merge. Not a setting: no SLUICE_ prefix, never documented.
KILL_AT_VARIABLE = "_SLUICE_KILL_AT"


def kill_point(step: str) -> None:
    """Die here, abruptly, if the tests asked for it."""
    if os.environ.get(KILL_AT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def hour_part_key(prefix: str, topic: str, partition: int, slot: HourSlot, final_key: str) -> str:
    """Where an hour part of `final_key` (a query-layout key) waits for its merge."""
    return (f"{prefix}{HOUR_PARTS}{topic}/{partition}/{slot.start.strftime(_HOUR_FORMAT)}/"
            f"{final_key[len(prefix):]}")


def is_hour_part(prefix: str, key: str) -> bool:
    return key.startswith(prefix + HOUR_PARTS)


def split_hour_part(prefix: str, key: str) -> tuple[str, str]:
    """(hour, query-layout directory with the prefix) of an hour part's key."""
    rest = key[len(prefix + HOUR_PARTS):]
    _topic, _partition, hour, layout_key = rest.split("/", 3)
    return hour, prefix + layout_key.rsplit("/", 1)[0] + "/" if "/" in layout_key else prefix


def hour_end_epoch(hour: str) -> float:
    return datetime.strptime(hour, _HOUR_FORMAT).replace(tzinfo=UTC).timestamp() + 3600


def with_hour_parts(prefix: str, marker: Marker, keys: Iterable[str]) -> Marker:
    """The marker with these published keys added to its hour parts (other keys ignored)."""
    added = [key for key in keys if is_hour_part(prefix, key) and key not in marker.hour_parts]
    return replace(marker, hour_parts=marker.hour_parts + tuple(added)) if added else marker


class PartitionState(Protocol):
    """What the merger needs of the sink's state of one owned partition."""

    key: PartitionKey
    claim: str
    marker: Marker
    parts: dict[str, Any]          # open parts by directory (``.slot``: their hour)
    lock: asyncio.Lock
    detached: bool


class _Detached(Exception):
    """The partition is no longer this claim's: stop, its next owner finishes the merge."""


class HourlyMerger:
    """Merges the closed hours of the partitions this worker owns (one at a time)."""

    def __init__(self, prefix: str, objects: S3Objects, markers: MarkerStore, spool_dir: Path,
                 *, grace: float, quiet: float, target_bytes: int, header: str,
                 lose: Callable[[Any, str], None]) -> None:
        self.prefix = prefix
        self.objects = objects
        self.markers = markers
        self.spool_dir = spool_dir
        self.grace = grace
        self.quiet = quiet
        self.target_bytes = target_bytes
        # The configured format's CSV header ("" for the other formats).
        self.header = header
        self._lose = lose
        # (partition, hour, directory, format) -> (its hour parts when last seen, since when).
        self._seen: dict[tuple[PartitionKey, str, str, str], tuple[tuple[str, ...], float]] = {}
        self._missing: set[str] = set()  # hour parts reported missing (logged once each)
        self._headerless: set[str] = set()  # CSV hour parts said to wait (logged once each)
        self._said: set[str] = set()  # outputs of mixed-format plans (logged once each)
        self.objects_merged = 0
        self.parts_merged = 0

    async def run(self, owned: Callable[[], Sequence[PartitionState]], interval: float) -> None:
        """Every `interval` seconds: finish a merge under way, merge what is due."""
        while True:
            await asyncio.sleep(interval)
            for state in owned():
                if state.detached:
                    continue
                try:
                    await self.merge_partition(state)
                except asyncio.CancelledError:
                    raise
                except _Detached:
                    continue
                except OwnershipLost as error:
                    self._lose(state, f"another worker claimed the partition during a merge "
                                      f"({error})")
                except Exception:  # noqa: BLE001 (tried again at the next tick)
                    log.exception("%s[%d]: hourly merge failed; trying again", *state.key)

    async def merge_partition(self, state: PartitionState) -> None:
        """Finish the partition's merge under way, then merge each due (hour, directory)."""
        plan = state.marker.merge
        if plan is not None and not await self._usable(state, plan):
            return
        plan = state.marker.merge
        if plan is not None and not await self._complete(state, plan):
            return  # a part is missing: tried again at the next tick, not in a loop
        while (plan := await self._plan_next(state)) is not None:
            kill_point("merge-planned")
            if not await self._complete(state, plan):
                return

    async def _plan_next(self, state: PartitionState) -> MergePlan | None:
        """Commit the plan of the next due (hour, directory) in the marker, if one is due."""
        # Under the partition's lock: a flush under way holds it, so its parts are either
        # still open (the hour waits for them) or committed in the marker (and merged).
        async with state.lock:
            if state.detached:
                raise _Detached
            for hour, directory, form, keys in self._due(state, time.time(), time.monotonic()):
                header = self._header(state, form, keys)
                if header is None:
                    continue
                sizes = [(key, await self._size(key)) for key in keys]
                missing = [key for key, size in sizes if size is None]
                if missing:
                    # Removed behind our back (an operator, a lifecycle rule), or merged by the
                    # partition's next owner while our marker is stale: never plan around it;
                    # the partition's other hours still merge.
                    self._report_missing(state, missing)
                    continue
                del self._seen[(state.key, hour, directory, form)]
                plan = MergePlan(plan_outputs(directory, [(k, s or 0) for k, s in sizes],
                                              self.target_bytes,
                                              len(gzip_header(header))), header)
                await self._write_marker(state, replace(state.marker, merge=plan))
                break
            else:
                return None
        log.info("%s[%d]: merging %d parts of hour %s into %d object(s)", *state.key,
                 len(keys), hour, len(plan.outputs))
        return plan

    async def _usable(self, state: PartitionState, plan: MergePlan) -> bool:
        """False for a plan (made by a version that merged formats together) whose outputs mix
        formats: dropped while none of its outputs exists, so its parts are planned again by
        format; otherwise kept waiting, said once (its parts are in an object already)."""
        if all(key_format(part) == key_format(output.key)
               for output in plan.outputs for part in output.parts):
            return True
        objects = self.objects
        for output in plan.outputs:
            if await objects.retrying("check object", objects.exists, output.key):
                if output.key not in self._said:
                    self._said.add(output.key)
                    log.error("%s[%d]: %s was merged from hour parts of several formats by an "
                              "earlier version; the partition's merges wait: check that object, "
                              "delete it, and the plan is made again by format", *state.key,
                              output.key)
                return False
        async with state.lock:
            if state.detached:
                raise _Detached
            await self._write_marker(state, replace(state.marker, merge=None))
        log.warning("%s[%d]: a merge plan mixing formats was dropped; its parts are merged by "
                    "format", *state.key)
        return True

    # --- what is due ----------------------------------------------------------------------

    def _due(self, state: PartitionState, now: float,
             now_monotonic: float) -> list[tuple[str, str, str, list[str]]]:
        """(hour, directory, format, hour parts) of each group due for a merge. Parts of one
        format only make an object: SLUICE_S3_FORMAT may have changed within the hour."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for key in state.marker.hour_parts:
            groups.setdefault((*split_hour_part(self.prefix, key), key_format(key)),
                              []).append(key)
        open_parts = {(part.slot.start.strftime(_HOUR_FORMAT), self.prefix + directory)
                      for directory, part in state.parts.items()}
        hours = {hour for hour, _, _ in groups} | {hour for hour, _ in open_parts}
        due = []
        for (hour, directory, form), keys in sorted(groups.items()):
            seen_key = (state.key, hour, directory, form)
            signature = tuple(keys)
            seen = self._seen.get(seen_key)
            if seen is None or seen[0] != signature:
                self._seen[seen_key] = seen = (signature, now_monotonic)
            if now < hour_end_epoch(hour) + self.grace or (hour, directory) in open_parts:
                continue
            moved_on = any(later > hour for later in hours)
            if moved_on or now_monotonic - seen[1] >= self.quiet:
                due.append((hour, directory, form, keys))
        return due

    def _header(self, state: PartitionState, form: str, keys: list[str]) -> str | None:
        """The header row a merged object of this format starts with; None while there is none
        to give it (CSV parts, another format configured: they wait, said once)."""
        if form != CSV_EXTENSION:
            return ""
        if self.header:
            return self.header
        new = [key for key in keys if key not in self._headerless]
        if new:
            self._headerless.update(new)
            log.error("%s[%d]: %d hour parts were written as CSV, but SLUICE_S3_FORMAT is no "
                      "longer csv: their merged object would have no header row, so they wait; "
                      "set SLUICE_S3_FORMAT=csv (with the same SLUICE_S3_CSV_COLUMNS) until "
                      "they are merged, e.g. %s", *state.key, len(new), new[0])
        return None

    # --- doing it -------------------------------------------------------------------------

    def _report_missing(self, state: PartitionState, keys: list[str]) -> None:
        """Log a missing hour part once (the merge check runs every second)."""
        new = [key for key in keys if key not in self._missing]
        if new:
            self._missing.update(new)
            log.error("%s[%d]: hour parts listed in the marker are missing from the bucket (%s); "
                      "their hour is not merged", *state.key, ", ".join(new[:3]))

    async def _complete(self, state: PartitionState, plan: MergePlan) -> bool:
        """Steps 2 and 3 of a committed plan, from wherever they stopped; False if a part is
        missing (the plan waits)."""
        objects = self.objects
        for output in plan.outputs:
            if state.detached:
                raise _Detached
            if await objects.retrying("check object", objects.exists, output.key):
                continue
            if not await self._build_and_upload(output, plan.header):
                if state.detached or await objects.retrying("check object", objects.exists,
                                                            output.key):
                    raise _Detached  # the partition's next owner got there first
                self._report_missing(state, [f"a part of {output.key}"])
                return False
            kill_point("merge-output-uploaded")
        for number, part in enumerate(plan.parts):
            await objects.retrying("delete merged part", objects.delete, part)
            if number == 0:
                kill_point("merge-part-deleted")
        kill_point("merge-parts-deleted")
        async with state.lock:
            if state.detached:
                raise _Detached
            merged = set(plan.parts)
            await self._write_marker(state, replace(
                state.marker, merge=None,
                hour_parts=tuple(k for k in state.marker.hour_parts if k not in merged)))
        self.objects_merged += len(plan.outputs)
        self.parts_merged += len(merged)
        for output in plan.outputs:
            log.info("merged %d hour parts into %s", len(output.parts), output.key,
                     extra={"object_key": output.key, "topic": state.key[0],
                            "partition": state.key[1]})
        return True

    async def _build_and_upload(self, output: MergeOutput, header: str) -> bool:
        """Build one output in the spool and upload it; False if a part is missing."""
        objects = self.objects
        token = uuid.uuid4().hex
        merged = self.spool_dir / f"merge-{token}"
        downloads: list[Path] = []
        try:
            parquet = is_parquet(output.key)
            with merged.open("wb") as out:
                out.write(gzip_header(header))
                for number, part in enumerate(output.parts):
                    local = self.spool_dir / f"merge-{token}-{number}"
                    downloads.append(local)
                    if not await objects.retrying(f"download {part}", self._download, part,
                                                  local):
                        return False
                    if not parquet:
                        await asyncio.to_thread(append_gzip, out, local)
                        local.unlink()
            if parquet:
                await asyncio.to_thread(merge_parquet, downloads, merged)
            size = merged.stat().st_size
            content_type, content_encoding = merged_as(output.key)
            await objects.retrying(f"upload {output.key}", objects.upload, merged, output.key,
                                   size, content_type, content_encoding)
            return True
        finally:
            merged.unlink(missing_ok=True)
            for local in downloads:
                local.unlink(missing_ok=True)

    async def _download(self, key: str, path: Path) -> bool:
        """Stream an object to a local file; False if it does not exist."""
        try:
            response = await self.objects.client.get_object(Bucket=self.objects.bucket, Key=key)
        except ClientError as error:
            if status_of(error) == 404 or error.response["Error"]["Code"] == "NoSuchKey":
                return False
            raise
        with path.open("wb") as out:
            async with response["Body"] as stream:
                while chunk := await stream.read(COPY_CHUNK):
                    out.write(chunk)
        return True

    async def _size(self, key: str) -> int | None:
        """The object's size; None if it does not exist (a 404 is an answer, not a fault)."""
        async def head() -> int | None:
            try:
                answer = await self.objects.client.head_object(Bucket=self.objects.bucket,
                                                               Key=key)
            except ClientError as error:
                if status_of(error) == 404:
                    return None
                raise
            return int(answer["ContentLength"])

        size = await self.objects.retrying("check object", head)
        return None if size is None else int(size)

    async def _write_marker(self, state: PartitionState, marker: Marker) -> None:
        where = marker_key(self.prefix, *state.key)
        state.marker = await self.objects.retrying(
            f"write marker {where}", self.markers.write, where, marker, state.marker.etag,
            state.claim)
