"""The S3 archive sink: hourly gzip NDJSON, CSV or Parquet parts per partition, exactly once.

What it promises
----------------
* **Layout.** Events are filed by hour (received time by default, event time as an option) and
  by source partition, under the key template (``worker.sinks.s3.naming``): Firehose / Athena's
  hive layout by default, Segment's layout as a preset.
* **Few, large files.** A partition's open parts are uploaded together when one reaches
  SLUICE_S3_PART_MAX_BYTES (compressed) or SLUICE_S3_PART_MAX_EVENTS, when the oldest has waited
  SLUICE_S3_PART_MAX_AGE, when its hour has closed by the partition's stream time (plus
  SLUICE_S3_HOUR_CLOSE_GRACE; ``worker.sinks.s3.closing``), when SLUICE_S3_MAX_BUFFERED_EVENTS
  is reached (the fullest partition goes first), when SLUICE_S3_MAX_OPEN_PARTS parts are open
  (the partition holding the most goes first), and on a rebalance or shutdown. Parts spool to
  local files, so memory stays flat; large parts go up with multipart upload. Which part an
  event goes to, and the counts behind these bounds: ``worker.sinks.s3.filing``.
* **Exactly-once objects.** Keys are deterministic (topic, partition, first and last offset),
  and a per-partition marker (``worker.sinks.s3.markers``) records how far the partition is
  written, two-phase and with conditional writes: after a crash, a rebalance or a replay, events
  of records below the marker are not written again, and half-written flushes are finished by
  the partition's next owner.
* **Fenced ownership.** A partition's state (its marker, claimed by this worker) is created when
  the partition is assigned, never by a write; events of partitions this worker does not own,
  or whose record was revoked, are ignored. Parts are uploaded under staging keys private to
  the claim and published only after the marker says so, so a former owner that is still
  running cannot add objects next to its successor's (``worker.sinks.s3.publication``; why:
  ``worker.sinks.s3.markers``). If a
  flush loses its partition while the worker still has it assigned (another worker claimed it)
  or fails for an unexpected reason, the sink reports the partition lost and the pipeline
  consumes it again: no record is left without an outcome.
* **Hourly objects.** With SLUICE_S3_PUBLISH=hourly, parts are published under
  ``_sluice/hour-parts/`` instead, and ``worker.sinks.s3.hourly`` merges each closed hour of a
  partition into one object (or a few) of the query layout, CSV parts by the columns each was
  written with. A merge that cannot be built is parked, its parts untouched, named in
  ``/health/ready`` and ``sluice_s3_merges_parked``; other hours go on (``…s3.parking``).
* **Failures.** Connection errors, 5xx, throttling and configuration faults (a storage class,
  a KMS key, a bucket policy, a deleted bucket: ``worker.sinks.s3.triage``) are retried with
  backoff without limit: nothing is acknowledged meanwhile and consumption pauses; a
  configuration fault is logged once and makes the sink unready, naming the setting to fix.
  Only an object S3 rejects for its content (e.g. ``EntityTooLarge``) dead-letters its events.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.config import S3Publish, Settings
from worker.events.records import Event
from worker.sinks.base import NOT_STARTED, PartitionKey, Sink, SinkOutcomes
from worker.sinks.s3.client import (
    S3StartupError,
    make_client_context,
    object_arguments,
    preflight,
)
from worker.sinks.s3.closing import due_directories, first_open_offset, separable
from worker.sinks.s3.filing import PartFiler, PartitionState
from worker.sinks.s3.formats.base import part_format
from worker.sinks.s3.hourly import HourlyMerger
from worker.sinks.s3.markers import MarkerStore, OwnershipLost, ParkedMerge
from worker.sinks.s3.naming import marker_key
from worker.sinks.s3.objects import RetryPolicy, S3Objects
from worker.sinks.s3.parking import describe as describe_parked
from worker.sinks.s3.publication import Publication, S3SinkStats
from worker.sinks.s3.spool import SpoolDirectory, claim_spool_directory

log = logging.getLogger(__name__)

NAME = "s3"
# The client and the start-up check live in client.py; importable from here too.
__all__ = ["NAME", "S3Sink", "S3SinkStats", "S3StartupError", "make_client_context", "preflight"]


class S3Sink(Sink):
    """Archives events to S3; see the module docstring for what it promises."""

    name = NAME

    def __init__(self, outcomes: SinkOutcomes, settings: Settings) -> None:
        super().__init__(outcomes)
        self.settings = settings
        self.stats = S3SinkStats()
        instance = uuid.uuid4().hex
        self._owner = f"{settings.app_id}/{instance}"
        # A directory of its own: several workers may share a state directory on one machine.
        self._spool_dir = settings.state_dir / "s3-spool" / instance
        self._format = part_format(settings)
        self._extension, self._content_type = self._format.extension, self._format.content_type
        # Hourly publication: hour parts of CSV have no header; the merged object gets one.
        self._hourly = settings.s3_publish == S3Publish.HOURLY
        self._merger: HourlyMerger | None = None
        self._merging: asyncio.Task[None] | None = None
        self._partitions: dict[PartitionKey, PartitionState] = {}
        self._claims = 0
        self._client_context: Any = None
        self._client: Any = None
        self._markers: MarkerStore | None = None
        self._objects: S3Objects | None = None
        self._publication: Publication | None = None
        self._flushes: dict[PartitionKey, asyncio.Task[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._spool: SpoolDirectory | None = None
        self._filer = PartFiler(settings, self._format, self._spool_dir,
                                with_header=not self._hourly)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        # Locked while we run; spool directories of dead workers are removed
        # (worker.sinks.s3.spool).
        self._spool = claim_spool_directory(self._spool_dir)
        self._client_context = make_client_context(self.settings)
        self._client = await self._client_context.__aenter__()
        self._markers = MarkerStore(self._client, self.settings.s3_bucket)
        self._objects = S3Objects(
            self._client, self.settings.s3_bucket,
            RetryPolicy(self.settings.s3_retry_initial, self.settings.s3_retry_max),
            object_arguments(self.settings), self.settings.s3_multipart_threshold,
            self.settings.s3_multipart_chunk_bytes, self._count_request_failure)
        self._publication = Publication(NAME, self.settings, self._objects, self._markers,
                                        self._format, self._hourly, self.stats, self.outcomes)
        self._ticker = asyncio.create_task(self._flush_when_due(), name="s3-due")
        # Always on: hour parts left in a marker (hourly mode switched off) are merged too.
        self._merger = HourlyMerger(
            self.settings.s3_prefix, self._objects, self._markers, self._spool_dir,
            grace=self.settings.s3_hour_close_grace, quiet=self.settings.s3_part_max_age,
            target_bytes=self.settings.s3_merge_target_bytes, header=self._format.header.decode(),
            lose=self._lose)
        self._merging = asyncio.create_task(self._merger.run(
            lambda: [s for s in self._partitions.values()
                     if s.taken_over and s.taken_over.done()],
            min(1.0, self.settings.s3_part_max_age / 4)), name="s3-hourly-merges")

    def _published(self) -> Publication:
        assert self._publication is not None, "S3Sink.start() was not called"
        return self._publication

    def _count_request_failure(self) -> None:
        self.stats.request_failures += 1

    async def check(self) -> str | None:
        if self._objects is not None and self._objects.faults:
            # A configuration fault pauses the sink: unready, with the setting to fix.
            return "; ".join(sorted(set(self._objects.faults.values())))
        if self._client is None:
            return NOT_STARTED
        try:
            await self._client.head_bucket(Bucket=self.settings.s3_bucket)
        except (ClientError, BotoCoreError) as error:
            return f"bucket {self.settings.s3_bucket}: {error}"
        return None

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self._merging:
            # A merge cut short here is finished by the partition's next owner.
            self._merging.cancel()
            await asyncio.gather(self._merging, return_exceptions=True)
        tasks = list(self._flushes.values()) + [
            state.taken_over for state in self._partitions.values() if state.taken_over]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for state in self._partitions.values():
            self._filer.discard(self._filer.take_parts(state))
        if self._client_context:
            await self._client_context.__aexit__(None, None, None)
            self._client = None  # closed: `check` says "not started" rather than asking it
        if self._spool:
            self._spool.release()

    @property
    def open_parts(self) -> int:
        return self._filer.open_parts

    @property
    def buffered_events(self) -> int:
        return self._filer.buffered_events

    @property
    def merges(self) -> HourlyMerger | None:
        """The hourly merges' counters (None before start)."""
        return self._merger

    @property
    def hour_parts_waiting(self) -> int:
        return sum(len(state.marker.hour_parts) for state in self._partitions.values())

    @property
    def parked_merges(self) -> list[tuple[PartitionKey, ParkedMerge]]:
        """The parked merges of the partitions this worker owns (``worker.sinks.s3.parking``)."""
        return [(key, entry) for key, state in sorted(self._partitions.items())
                for entry in state.marker.parked]

    def notice(self) -> str | None:
        parked = self.parked_merges
        return "; ".join(describe_parked(key, entry) for key, entry in parked) or None

    @property
    def paused_calls(self) -> int:
        """Kinds of S3 calls (upload, copy, …) retrying a refusal only a configuration change
        ends: above 0 the sink is paused (what ``check`` names)."""
        return len(self._objects.faults) if self._objects is not None else 0

    # --- ownership ------------------------------------------------------------------------

    def assign(self, partitions: Collection[PartitionKey]) -> None:
        for key in partitions:
            if key in self._partitions:
                continue
            self._claims += 1
            state = PartitionState(key, f"{self._owner}/{self._claims}")
            state.taken_over = asyncio.create_task(self._take_over(state),
                                                   name=f"s3-take-over-{key[0]}-{key[1]}")
            self._partitions[key] = state

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        for key in partitions:
            state = self._partitions.pop(key, None)
            if state is None:
                continue
            state.detached = True
            if state.taken_over and not state.taken_over.done():
                state.taken_over.cancel()
            # A flush under way goes on (its events' outcomes are ignored now); its marker
            # write fails if the next owner has claimed the partition meanwhile.
            self._filer.discard(self._filer.take_parts(state))

    # --- the contract ---------------------------------------------------------------------

    async def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        first = events[0].position
        key = (first.topic, first.partition)
        state = self._partitions.get(key)
        if state is None:
            # Not ours (never assigned, or revoked): the partition's owner writes these.
            self.stats.events_ignored_not_owned += len(events)
            return
        assert state.taken_over is not None
        if not state.taken_over.done():
            await asyncio.wait([state.taken_over])
        if state.detached or self._partitions.get(key) is not state:
            return
        already_written: list[Event] = []
        fresh: list[Event] = []
        below = state.marker.next_offset
        for event in events:
            if event.cancelled:
                continue
            if event.position.offset < below:
                already_written.append(event)
            else:
                fresh.append(event)
        if fresh:
            await self._append_within_bound(state, fresh)
        state.next_offset = max(state.next_offset, events[-1].position.offset + 1)
        if already_written:
            self.stats.events_skipped_already_written += len(already_written)
            self.outcomes.delivered(NAME, already_written)
        if state.full:
            # Off the agent's path: the upload runs while the agent goes on. One flush per
            # partition at a time; a partition that fills up again meanwhile waits for it.
            running = self._flushes.get(key)
            if running is not None:
                await asyncio.wait([running])
            self._start_flushes([key])
        elif self.buffered_events >= self.settings.s3_max_buffered_events:
            fullest = max(self._partitions, key=lambda k: self._partitions[k].buffered)
            await self._flush_and_wait([fullest])

    async def flush(self) -> None:
        taking_over = [state.taken_over for state in self._partitions.values()
                       if state.taken_over and not state.taken_over.done()]
        if taking_over:
            await asyncio.wait(taking_over)
        await self._flush_and_wait(list(self._partitions))
        while self._flushes:
            await asyncio.wait(list(self._flushes.values()))

    # --- filling parts --------------------------------------------------------------------

    async def _append_within_bound(self, state: PartitionState, events: list[Event]) -> None:
        """Append events, uploading parts first whenever SLUICE_S3_MAX_OPEN_PARTS is reached."""
        while events:
            appended = self._filer.append(state, events)
            if appended == len(events):
                return
            events = events[appended:]
            before = self._filer.open_parts
            await self._make_room(state, events[0].position.offset)
            if self._filer.open_parts >= before:
                # Nothing could be uploaded (a partition still being taken over): go over the
                # bound rather than stall; the next write tries again.
                self._filer.append(state, events, bounded=False)
                return

    async def _make_room(self, state: PartitionState, resume_offset: int) -> None:
        """Upload the parts of the partition holding the most open parts: a partition's parts
        go up together, so that frees the most parts for one flush."""
        victim = max(self._partitions.values(), key=lambda other: len(other.parts))
        if victim is state:
            # Everything appended so far lies below `resume_offset` (a record boundary).
            state.next_offset = max(state.next_offset, resume_offset)
        log.info("%s[%d]: %d open S3 parts reached SLUICE_S3_MAX_OPEN_PARTS: uploading the "
                 "%d parts of %s[%d]", *state.key, self._filer.open_parts, len(victim.parts),
                 *victim.key)
        running = self._flushes.get(victim.key)
        if running is not None:
            await asyncio.wait([running])
        await self._flush_and_wait([victim.key])

    def _due(self, state: PartitionState, now_monotonic: float, now: float) -> list[str]:
        grace = self.settings.s3_hour_close_grace
        return due_directories(state.parts, state.clock.stream_time(now, now_monotonic, grace),
                               now_monotonic, self.settings.s3_part_max_age, grace, state.late)

    async def _flush_when_due(self) -> None:
        # Checked four times per part age (at most every second): a part is uploaded at most a
        # quarter of its age late.
        interval = min(1.0, self.settings.s3_part_max_age / 4)
        while True:
            await asyncio.sleep(interval)
            now_monotonic, now = time.monotonic(), time.time()
            for key, state in self._partitions.items():
                if state.parts and key not in self._flushes:
                    directories = self._due(state, now_monotonic, now)
                    if directories:
                        self._start_flushes([key], directories)

    # --- flushing -------------------------------------------------------------------------

    async def _flush_and_wait(self, keys: list[PartitionKey]) -> None:
        """Flush these partitions in tasks of their own and wait for them: cancelling the
        wait (a drain that timed out) leaves the uploads and their outcomes intact."""
        tasks = self._start_flushes(keys)
        if tasks:
            await asyncio.wait(tasks)

    def _start_flushes(self, keys: list[PartitionKey],
                       directories: list[str] | None = None) -> list[asyncio.Task[None]]:
        tasks = []
        for key in keys:
            running = self._flushes.get(key)
            if running is None:
                running = asyncio.create_task(self._flush_partition(key, directories),
                                              name=f"s3-flush-{key[0]}-{key[1]}")
                self._flushes[key] = running
                running.add_done_callback(lambda task, key=key: self._flush_finished(key, task))
            tasks.append(running)
        return tasks

    def _flush_finished(self, key: PartitionKey, task: asyncio.Task[None]) -> None:
        if self._flushes.get(key) is task:
            del self._flushes[key]

    async def _flush_partition(self, key: PartitionKey,
                               directories: list[str] | None = None) -> None:
        """Upload the partition's parts: all of them, or only `directories` (closed hours)
        when the rest can stay open (see ``worker.sinks.s3.closing``)."""
        state = self._partitions.get(key)
        if state is None or state.taken_over is None or not state.taken_over.done():
            return
        async with state.lock:
            if not state.parts or self._partitions.get(key) is not state:
                return
            chosen = [d for d in directories or () if d in state.parts]
            if chosen and len(chosen) < len(state.parts) and separable(state.parts, chosen):
                parts = self._filer.take_parts(state, chosen)
                through = first_open_offset(list(state.parts.values()))
            else:
                parts, through = self._filer.take_parts(state), state.next_offset
            try:
                await self._published().upload_parts(state, parts, through)
            except OwnershipLost:
                self._lose(state, f"another worker claimed {marker_key('', *key)}",
                           contested=True)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 (no event may stay without an outcome)
                log.exception("%s[%d]: S3 flush failed", *key)
                self._lose(state, f"flush failed: {type(error).__name__}: {error}")
            finally:
                for part in parts:
                    part.discard()

    def _lose(self, state: PartitionState, reason: str, contested: bool = False) -> None:
        """This claim is over while the partition may still be assigned: drop what it holds
        and tell the pipeline, which consumes the partition again (`contested`: because
        another worker claimed it, so the group's assignment may be wrong)."""
        if self._partitions.get(state.key) is not state:
            return  # forgotten meanwhile: the next owner has the records
        log.warning("%s[%d]: %s: dropping %d buffered events; the partition is consumed again",
                    *state.key, reason, state.buffered)
        self._partitions.pop(state.key)
        state.detached = True
        self._filer.discard(self._filer.take_parts(state))
        self.stats.partitions_lost += 1
        if contested:
            self.outcomes.contested(NAME, state.key, reason)
        else:
            self.outcomes.lost(NAME, state.key, reason)

    # --- taking a partition over ----------------------------------------------------------

    async def _take_over(self, state: PartitionState) -> None:
        """Claim a newly assigned partition; if that fails, the partition is reported lost
        (never written on with a marker we did not read)."""
        try:
            await self._published().claim(state)
        except asyncio.CancelledError:
            raise
        except OwnershipLost as error:
            self._lose(state, f"another worker claimed the partition while we took it over "
                              f"({error})", contested=True)
        except Exception as error:  # noqa: BLE001
            log.exception("%s[%d]: taking the partition over failed", *state.key)
            self._lose(state, f"take-over failed: {type(error).__name__}: {error}")
