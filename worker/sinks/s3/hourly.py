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
* **What merges together.** The parts of one (hour, directory) of one format and, for CSV, one
  header row: each CSV part is listed in the marker with the columns it was written with, so
  SLUICE_S3_CSV_COLUMNS may change at any time (a rolling deploy, a new owner with new
  settings) and every merged object holds rows of its own header's columns only; parts of
  another header make objects of their own. CSV parts an earlier version listed without
  their header are merged under the configured one, as that version did
  (``worker.sinks.s3.hour_parts``).
* **Crash-safe, three steps.** (1) The plan (outputs, the parts of each, the CSV header) is
  written to the marker, conditionally like every marker write. (2) Each output that does not
  exist yet is built from its parts (downloaded to the spool, merged by stream) and uploaded; the
  bytes depend only on the parts, so whoever builds it writes the same object. (3) The parts are
  deleted, then the marker drops the plan and the merged parts. The partition's next owner (or
  this worker's next tick) finds a plan in the marker and finishes it from the step it reached:
  existing outputs are kept, missing ones built, the parts deleted. A reader of the query layout
  sees only merged objects, each event in one of them, none replaced later.
* **A merge that cannot be built** (a part truncated or corrupt, missing, or of a schema the
  other parts cannot take: ``worker.sinks.s3.building``) is parked with its parts untouched,
  named in ``/health/ready`` and the metric ``sluice_s3_merges_parked``, and tried again when
  one of its parts changes; the partition's other hours go on (``worker.sinks.s3.parking``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from worker.sinks.base import PartitionKey
from worker.sinks.s3 import parking
from worker.sinks.s3.building import MISSING_PART, Head, OutputBuilder, Unmergeable
from worker.sinks.s3.hour_parts import (
    DueGroups,
    HourGroup,
    hour_part_key,
    is_hour_part,
    split_hour_part,
    with_hour_parts,
)
from worker.sinks.s3.markers import Marker, MarkerStore, MergePlan, OwnershipLost, ParkedMerge
from worker.sinks.s3.merge import CSV_EXTENSION, gzip_header, key_format, plan_outputs
from worker.sinks.s3.naming import marker_key
from worker.sinks.s3.objects import S3Objects

log = logging.getLogger(__name__)

# Importable from here as before (the key helpers live in ``hour_parts``).
__all__ = ["KILL_AT_VARIABLE", "HourlyMerger", "hour_part_key", "is_hour_part", "kill_point",
           "split_hour_part", "with_hour_parts"]

# Fault injection for the tests (tests/e2e/test_hourly_merge_kills.py): the worker SIGKILLs
# itself at this named step of a merge. Not a setting: no SLUICE_ prefix, never documented.
KILL_AT_VARIABLE = "_SLUICE_KILL_AT"


def kill_point(step: str) -> None:
    """Die here, abruptly, if the tests asked for it."""
    if os.environ.get(KILL_AT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


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
                 lose: Callable[..., None]) -> None:
        self.prefix = prefix
        self.objects = objects
        self.markers = markers
        self.builder = OutputBuilder(objects, spool_dir)
        self.target_bytes = target_bytes
        # The configured format's CSV header ("" for the other formats): the header of CSV
        # parts an earlier version listed without theirs.
        self.header = header
        self._lose = lose
        self._due = DueGroups(prefix, grace, quiet)
        self._checks = parking.ParkedChecks()
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
                                      f"({error})", contested=True)
                except Exception:  # noqa: BLE001 (tried again at the next tick)
                    log.exception("%s[%d]: hourly merge failed; trying again", *state.key)

    async def merge_partition(self, state: PartitionState) -> None:
        """Finish the partition's merge under way, merge each due group of hour parts, then
        look at its parked merges."""
        plan = state.marker.merge
        if plan is not None and not await self._usable(state, plan):
            return
        plan = state.marker.merge
        if plan is not None:
            await self._finish(state, plan)
        while (plan := await self._plan_next(state)) is not None:
            kill_point("merge-planned")
            await self._finish(state, plan)
        await self._look_at_parked(state)

    async def _plan_next(self, state: PartitionState) -> MergePlan | None:
        """Commit the plan of the next due group in the marker, if one is due (a group with a
        part missing is parked at once, and the next one planned)."""
        # Under the partition's lock: a flush under way holds it, so its parts are either
        # still open (the hour waits for them) or committed in the marker (and merged).
        async with state.lock:
            if state.detached:
                raise _Detached
            now, now_monotonic = time.time(), time.monotonic()
            for group in self._due.due(state.key, state.marker, state.parts, now,
                                       now_monotonic):
                header = self._header(state, group)
                if header is None:
                    continue
                heads = {key: await self.builder.head(key) for key in group.keys}
                plan = MergePlan(plan_outputs(
                    group.directory, [(k, h.size if h else 0) for k, h in heads.items()],
                    self.target_bytes, len(gzip_header(header))), header)
                self._due.planned(state.key, group)
                missing = [key for key, head in heads.items() if head is None]
                if missing:
                    # Removed behind our back (an operator, a lifecycle rule): never merged
                    # around; parked, so that it is said and tried again if the part comes
                    # back. (Merged by the partition's next owner while our marker is stale:
                    # the marker write fails, and the partition is given up.)
                    await self._write_marker(state, parking.parked(
                        state.marker, plan, MISSING_PART,
                        f"hour part {missing[0]} is missing from the bucket"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                        heads))
                    self._said_parked(state, state.marker.parked[-1])
                    continue
                await self._write_marker(state, replace(state.marker, merge=plan))
                break
            else:
                return None
        log.info("%s[%d]: merging %d parts of hour %s into %d object(s)", *state.key,
                 len(group.keys), group.hour, len(plan.outputs))
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

    def _header(self, state: PartitionState, group: HourGroup) -> str | None:
        """The header row a merged object of this group starts with: the one its parts were
        written with; for CSV parts an earlier version listed without it, the configured one,
        and None while there is none (another format configured: they wait, said once)."""
        if group.header is not None:
            return group.header
        if self.header and group.form == CSV_EXTENSION:
            return self.header
        new = [key for key in group.keys if key not in self._headerless]
        if new:
            self._headerless.update(new)
            log.error("%s[%d]: %d hour parts were written as CSV by an earlier version, which "
                      "did not record their columns, and SLUICE_S3_FORMAT is no longer csv: "
                      "their merged object would have no header row, so they wait; set "
                      "SLUICE_S3_FORMAT=csv (with the same SLUICE_S3_CSV_COLUMNS) until they "
                      "are merged, e.g. %s", *state.key, len(new), new[0])
        return None

    # --- doing it -------------------------------------------------------------------------

    async def _finish(self, state: PartitionState, plan: MergePlan) -> None:
        """Steps 2 and 3 of a committed plan; a plan that cannot be built is parked."""
        try:
            await self._complete(state, plan)
        except Unmergeable as error:
            heads = {part: await self.builder.head(part) for part in plan.parts}
            async with state.lock:
                if state.detached:
                    raise _Detached from None
                await self._write_marker(state, parking.parked(
                    state.marker, plan, error.cause, str(error), heads))
            self._said_parked(state, state.marker.parked[-1])

    async def _complete(self, state: PartitionState, plan: MergePlan) -> None:
        """Steps 2 and 3 of a committed plan, from wherever they stopped; Unmergeable if an
        output cannot be built."""
        objects = self.objects
        for output in plan.outputs:
            if state.detached:
                raise _Detached
            if await objects.retrying("check object", objects.exists, output.key):
                continue
            try:
                await self.builder.build_and_upload(output, plan.header)
            except Unmergeable as error:
                if error.cause == MISSING_PART and (
                        state.detached
                        or await objects.retrying("check object", objects.exists, output.key)):
                    raise _Detached from None  # the partition's next owner got there first
                raise
            kill_point("merge-output-uploaded")
        for number, part in enumerate(plan.parts):
            await objects.retrying("delete merged part", objects.delete, part)
            if number == 0:
                kill_point("merge-part-deleted")
        kill_point("merge-parts-deleted")
        async with state.lock:
            if state.detached:
                raise _Detached
            await self._write_marker(state, replace(
                state.marker.without_hour_parts(plan.parts), merge=None))
        self.objects_merged += len(plan.outputs)
        self.parts_merged += len(plan.parts)
        for output in plan.outputs:
            log.info("merged %d hour parts into %s", len(output.parts), output.key,
                     extra={"object_key": output.key, "topic": state.key[0],
                            "partition": state.key[1]})

    # --- parked merges --------------------------------------------------------------------

    def _said_parked(self, state: PartitionState, entry: ParkedMerge) -> None:
        self._checks.looked(state.claim, entry)  # this claim has tried it: not again unchanged
        log.error("%s", parking.describe(state.key, entry),
                  extra={"object_key": entry.plan.outputs[0].key, "topic": state.key[0],
                         "partition": state.key[1], "error_class": "MergeParked"})

    async def _look_at_parked(self, state: PartitionState) -> None:
        """Try a parked merge again if this claim has not, or if one of its parts changed:
        the plan (reduced to the parts left) is committed as the merge under way, then
        finished like any other (or parked again). One per call."""
        for entry in state.marker.parked:
            if not self._checks.worth_a_look(state.claim, entry):
                continue
            first = self._checks.looked(state.claim, entry)
            heads: dict[str, Head | None] = {
                part: await self.builder.head(part) for part in entry.plan.parts}
            if not first and not parking.changed(entry, heads):
                continue
            existing = {output.key for output in entry.plan.outputs
                        if await self.objects.retrying("check object", self.objects.exists,
                                                       output.key)}
            plan = parking.retry_plan(entry, heads, existing)
            async with state.lock:
                if state.detached:
                    raise _Detached
                await self._write_marker(state, parking.unparked(state.marker, entry, plan))
            if plan is None:
                log.warning("%s[%d]: the parked merge into %s has no part left: dropped",
                            *state.key, entry.plan.outputs[0].key)
                return
            log.info("%s[%d]: trying the parked merge into %s again (%s)", *state.key,
                     plan.outputs[0].key, "first try of this claim" if first
                     else "one of its parts changed")
            await self._finish(state, plan)
            return

    async def _write_marker(self, state: PartitionState, marker: Marker) -> None:
        where = marker_key(self.prefix, *state.key)
        state.marker = await self.objects.retrying(
            f"write marker {where}", self.markers.write, where, marker, state.marker.etag,
            state.claim)
