"""How a partition's parts reach S3 exactly once: staging, the marker's commit point,
publication, and the claim of a newly assigned partition.

A flush uploads its parts under staging keys private to the claim (``_sluice/staging/<claim>/…``),
several at once within a byte budget; the partition's marker then names them (``pending``: the
commit point, a conditional write that fails if another worker claimed the partition); they are
copied to their final keys and the staged copies deleted; the marker moves past their records.
A claim reads the marker and rolls a previous owner's committed flush forward before it writes
its own name into the marker. Why staging keys, and what a late upload of a former owner can
and cannot do: ``worker.sinks.s3.markers``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from worker.config import Settings
from worker.events.errors import SinkRejected
from worker.events.records import Event
from worker.sinks.base import SinkFailure, SinkOutcomes
from worker.sinks.s3.concurrency import ByteBudget, gather_bounded
from worker.sinks.s3.filing import PartitionState
from worker.sinks.s3.formats.base import Part, PartFormat
from worker.sinks.s3.hour_parts import hour_part_key, with_hour_parts
from worker.sinks.s3.markers import MarkerStore, OwnershipLost, Pending
from worker.sinks.s3.naming import marker_key, object_key, staging_key
from worker.sinks.s3.objects import Rejected, S3Objects

log = logging.getLogger(__name__)


@dataclass
class S3SinkStats:
    """Counters the operations endpoints expose."""

    objects_written: int = 0
    bytes_written: int = 0
    events_written: int = 0
    events_skipped_already_written: int = 0
    events_ignored_not_owned: int = 0
    partitions_lost: int = 0
    dead_lettered: int = 0
    request_failures: int = 0
    upload_seconds: float = 0.0



class DeadLettersUnsettled(Exception):
    """Events S3 rejected could not be dead-lettered: the flush must not be committed."""


def _settled(event: Event, sink: str) -> bool:
    """True once the event's share for `sink` has an outcome in a live ticket."""
    ticket = event.ticket
    return ticket is None or (not ticket.cancelled and not ticket.is_pending((event.ordinal, sink)))


class Publication:
    """Uploads, commits and publishes a partition's parts; claims partitions."""

    def __init__(self, sink_name: str, settings: Settings, objects: S3Objects,
                 markers: MarkerStore, part_format: PartFormat, hourly: bool,
                 stats: S3SinkStats, outcomes: SinkOutcomes) -> None:
        self._name = sink_name
        self.settings = settings
        self._objects = objects
        self._markers = markers
        self._format = part_format
        self._hourly = hourly
        self.stats = stats
        self.outcomes = outcomes

    async def upload_parts(self, state: PartitionState, parts: list[Part],
                           through: int) -> None:
        """Stage the parts, commit them in the marker, publish them, move the marker."""
        key, prefix = state.key, self.settings.s3_prefix
        where = marker_key(prefix, *key)
        rejected: list[SinkFailure] = []
        budget = ByteBudget(self.settings.s3_multipart_threshold)

        async def stage(part: Part) -> tuple[Part, str, str] | None:
            final = object_key(prefix, part.directory, key[0], key[1],
                               part.first_offset or 0, part.last_offset, self._format.extension)
            if self._hourly:
                final = hour_part_key(prefix, key[0], key[1], part.slot, final)
            staging = staging_key(prefix, state.claim, final)
            size = part.finish()
            await budget.acquire(size)
            started = time.monotonic()
            try:
                await self._objects.retrying(f"upload {staging}", self._objects.upload,
                                             part.path, staging, size, self._format.content_type,
                                             self._format.content_encoding, permanent_4xx=True)
            except Rejected as rejection:
                rejected.extend(SinkFailure(e, SinkRejected(str(rejection), sink=self._name))
                                for e in part.events)
                return None
            finally:
                await budget.release(size)
            self.stats.upload_seconds += time.monotonic() - started
            self.stats.bytes_written += size
            return part, final, staging

        staged = [result for result in await gather_bounded(
            [lambda part=part: stage(part) for part in parts]) if result is not None]
        if rejected:
            # Dead-lettered before the marker moves past them: a crash in between must not
            # leave them neither in S3 nor in the dead-letter topic.
            self.stats.dead_lettered += len(rejected)
            await self.outcomes.failed(self._name, rejected)
            # A dead letter may also be held instead (the dead-letter limit tripped) and its
            # partition revoked meanwhile: then its event is in neither place, and the marker
            # must not move past it, or the next owner would skip it as written.
            unsettled = [failure.event for failure in rejected
                         if not _settled(failure.event, self._name)]
            if unsettled:
                raise DeadLettersUnsettled(
                    f"{len(unsettled)} events S3 rejected were not dead-lettered (first at "
                    f"offset {unsettled[0].position.offset}): the partition is consumed again")
        finals = [final for _, final, _ in staged]
        stagings = [staging for _, _, staging in staged]
        # The header row the parts were written with (CSV's columns): recorded with them, so
        # that an hourly merge gives their rows their own header, whatever is configured then.
        header = self._format.header.decode()
        # The commit point: from here on, whoever owns the partition publishes these parts.
        state.marker = await self._objects.retrying(
            f"write marker {where}", self._markers.write, where,
            state.marker.moved(state.marker.next_offset,
                               Pending(through, finals, stagings, header)),
            state.marker.etag, state.claim)
        await self.publish(finals, stagings)
        state.marker = await self._objects.retrying(
            f"write marker {where}", self._markers.write, where,
            with_hour_parts(prefix, state.marker.moved(through), finals, header),
            state.marker.etag, state.claim)
        written = [event for part, _, _ in staged for event in part.events]
        for part, final, _ in staged:
            self.stats.objects_written += 1
            log.info("wrote s3://%s/%s: %d events, offsets %s-%d",
                     self.settings.s3_bucket, final, len(part.events), part.first_offset,
                     part.last_offset,
                     extra={"object_key": final, "topic": key[0], "partition": key[1],
                            "first_offset": part.first_offset, "last_offset": part.last_offset,
                            "events": len(part.events)})
        self.stats.events_written += len(written)
        self.outcomes.delivered(self._name, written)

    async def publish(self, finals: list[str], stagings: list[str]) -> None:
        """Copy staged parts to their final keys, then remove the staged copies. Idempotent:
        a part already published (by us, a retry, or another owner) is left as it is."""
        objects = self._objects

        async def publish(final: str, staging: str) -> None:
            copied = await objects.retrying(f"publish {final}", objects.copy, staging, final)
            if not copied and not await objects.retrying("check object", objects.exists, final):
                # Neither staged nor published: only a lost claim explains it (the new owner
                # published and cleaned up, then something removed the object) — stop here.
                raise OwnershipLost(f"{staging} vanished before it was published as {final}")

        # Every copy before any delete: a staged part is removed only once all are published.
        await gather_bounded([lambda f=final, s=staging: publish(f, s)
                              for final, staging in zip(finals, stagings, strict=True)])
        await gather_bounded([lambda s=staging: objects.retrying(
            "delete staged part", objects.delete, s) for staging in stagings])

    async def claim(self, state: PartitionState) -> None:
        """Read the partition's marker, finish a half-done flush, and claim the partition."""
        objects, key = self._objects, state.key
        where = marker_key(self.settings.s3_prefix, *key)
        marker = await objects.retrying(f"read marker {where}", self._markers.load, where)
        next_offset = marker.next_offset
        pending = marker.pending
        claimed = marker
        if pending and pending.staged:
            # Staged parts are complete by construction: roll forward.
            await self.publish(pending.keys, pending.staged)
            next_offset = pending.next_offset
            claimed = with_hour_parts(self.settings.s3_prefix, marker, pending.keys,
                                      pending.header)
            log.info("%s[%d]: published the previous owner's committed parts: rolled forward "
                     "to %d", *key, next_offset)
        elif pending:
            # A marker of the old form (uploads straight to the final keys).
            exists = [await objects.retrying("check object", objects.exists, k)
                      for k in pending.keys]
            if all(exists):
                next_offset = pending.next_offset
                log.info("%s[%d]: previous owner's parts all uploaded: rolling forward to %d",
                         *key, next_offset)
            else:
                for object_name, present in zip(pending.keys, exists, strict=True):
                    if present:
                        await objects.retrying("delete object", objects.delete, object_name)
                log.info("%s[%d]: previous owner's flush was incomplete: removed its parts, "
                         "rewriting from offset %d", *key, next_offset)
        state.marker = await objects.retrying(
            f"claim marker {where}", self._markers.write, where, claimed.moved(next_offset),
            marker.etag, state.claim)
        state.next_offset = next_offset
        log.info("%s[%d]: S3 holds every record below offset %d", *key, next_offset)
