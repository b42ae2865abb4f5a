"""Per-partition markers: how far a partition is in S3, so no event is written there twice.

One small JSON object per source partition (``_sluice/markers/<topic>/<partition>.json``):

``{"next_offset": N, "pending": {"next_offset": M, "keys": [...]} | null, "owner": "..."}``

In ``hourly`` publication (SLUICE_S3_PUBLISH) the marker also lists the partition's hour parts
not yet merged (``hour_parts``), the header row each CSV hour part was written with
(``hour_part_headers``: ``{header: [part keys]}``; the columns may change between flushes), the
merge under way (``merge``: its output keys and the parts each is made of) and the merges that
could not be built, set aside with their parts (``parked``); see ``worker.sinks.s3.hourly``.

Every record of the partition below ``next_offset`` is in S3 (or never had an event for it).
Writing parts is two-phase: the marker first names the parts about to be uploaded
(``pending``), then the parts are uploaded, then the marker moves ``next_offset`` to M. A worker
that takes the partition over finishes the job either way: if every pending part exists it rolls
forward, otherwise it deletes the pending parts that exist and rolls back, so the records are
written again exactly once.

Every write is conditional on the ETag read before (``If-Match``, or ``If-None-Match: *`` for a
new marker), and taking a partition over rewrites the marker with a new ``owner``: a worker that
lost the partition but still flushes gets 412 Precondition Failed and stops (``OwnershipLost``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from botocore.exceptions import ClientError


class OwnershipLost(Exception):
    """Another worker wrote this partition's marker since we read it."""


@dataclass(frozen=True)
class Pending:
    next_offset: int
    keys: list[str] = field(default_factory=list)
    # The staged object of each key (same order); empty for markers of the old form.
    staged: list[str] = field(default_factory=list)
    # The header row the parts were written with (CSV's columns); "" for none, or unknown (a
    # marker of an earlier version).
    header: str = ""


@dataclass(frozen=True)
class MergeOutput:
    """One object of the query layout and the hour parts it is made of, in order."""

    key: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class MergePlan:
    """A merge of hour parts, committed in the marker before any output is written."""

    outputs: tuple[MergeOutput, ...]
    header: str = ""              # CSV: the header the merged objects start with

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(part for output in self.outputs for part in output.parts)

    def as_json(self) -> dict[str, object]:
        return {"outputs": [{"key": o.key, "parts": list(o.parts)} for o in self.outputs],
                "header": self.header}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> MergePlan:
        outputs = data["outputs"]
        assert isinstance(outputs, list)
        return cls(tuple(MergeOutput(o["key"], tuple(o["parts"])) for o in outputs),
                   str(data.get("header") or ""))


@dataclass(frozen=True)
class ParkedMerge:
    """A committed merge that could not be built (a part unreadable, missing, or of a schema
    the others cannot take), set aside with its parts untouched so the partition's other hours
    go on (``worker.sinks.s3.parking``)."""

    plan: MergePlan
    cause: str                    # corrupt_part, missing_part or schema_mismatch
    reason: str                   # for a person: which part, and what is wrong with it
    since: str                    # when it was parked (UTC ISO-8601)
    # Each part's ETag when it was parked (None: missing): a change is what makes it worth
    # trying again.
    etags: tuple[tuple[str, str | None], ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"plan": self.plan.as_json(), "cause": self.cause, "reason": self.reason,
                "since": self.since, "etags": dict(self.etags)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParkedMerge:
        return cls(MergePlan.from_json(data["plan"]), str(data.get("cause") or ""),
                   str(data.get("reason") or ""), str(data.get("since") or ""),
                   tuple((data.get("etags") or {}).items()))


@dataclass(frozen=True)
class Marker:
    next_offset: int = 0
    pending: Pending | None = None
    etag: str | None = None
    # Hourly publication: committed hour parts not merged yet, and the merge under way.
    hour_parts: tuple[str, ...] = ()
    merge: MergePlan | None = None
    # The header row of each hour part written with one (CSV), by part key.
    hour_part_headers: Mapping[str, str] = field(default_factory=dict)
    parked: tuple[ParkedMerge, ...] = ()

    def body(self, owner: str) -> bytes:
        pending = (
            {"next_offset": self.pending.next_offset, "keys": self.pending.keys,
             "staged": self.pending.staged}
            if self.pending else None
        )
        if pending is not None and self.pending and self.pending.header:
            pending["header"] = self.pending.header
        data: dict[str, object] = {"next_offset": self.next_offset, "pending": pending,
                                   "owner": owner}
        if self.hour_parts:
            data["hour_parts"] = list(self.hour_parts)
        by_header: dict[str, list[str]] = {}
        for key in self.hour_parts:
            header = self.hour_part_headers.get(key)
            if header:
                by_header.setdefault(header, []).append(key)
        if by_header:
            data["hour_part_headers"] = by_header
        if self.merge:
            data["merge"] = self.merge.as_json()
        if self.parked:
            data["parked"] = [parked.as_json() for parked in self.parked]
        return orjson.dumps(data)

    def with_hour_parts(self, keys: Iterable[str], header: str = "") -> Marker:
        """This marker with `keys` added to its hour parts (those not listed yet), each
        recorded with the header row it was written with (if any)."""
        added = [key for key in keys if key not in self.hour_parts]
        if not added:
            return self
        headers = dict(self.hour_part_headers)
        if header:
            headers.update(dict.fromkeys(added, header))
        return replace(self, hour_parts=self.hour_parts + tuple(added),
                       hour_part_headers=headers)

    def without_hour_parts(self, keys: Iterable[str]) -> Marker:
        """This marker without these hour parts (merged, or parked with their plan)."""
        gone = set(keys)
        return replace(self, hour_parts=tuple(k for k in self.hour_parts if k not in gone),
                       hour_part_headers={k: h for k, h in self.hour_part_headers.items()
                                          if k not in gone})

    def moved(self, next_offset: int, pending: Pending | None = None) -> Marker:
        """This marker at another offset (and pending flush), its hourly state kept."""
        return replace(self, next_offset=next_offset, pending=pending)

    @property
    def state(self) -> tuple[object, ...]:
        """What the marker says, without its ETag."""
        return (self.next_offset, self.pending, self.hour_parts, self.merge,
                dict(self.hour_part_headers), self.parked)


class MarkerStore:
    """Reads and conditionally writes the markers of one bucket and prefix."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def load(self, key: str) -> Marker:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return Marker()
            raise
        async with response["Body"] as stream:
            data = orjson.loads(await stream.read())
        pending = data.get("pending")
        merge = data.get("merge")
        return Marker(
            next_offset=int(data["next_offset"]),
            pending=Pending(int(pending["next_offset"]), list(pending["keys"]),
                            list(pending.get("staged") or []), str(pending.get("header") or ""))
            if pending else None,
            etag=response["ETag"],
            hour_parts=tuple(data.get("hour_parts") or ()),
            merge=MergePlan.from_json(merge) if merge else None,
            hour_part_headers={key: header for header, keys in
                               (data.get("hour_part_headers") or {}).items() for key in keys},
            parked=tuple(ParkedMerge.from_json(p) for p in data.get("parked") or ()),
        )

    async def write(self, key: str, marker: Marker, expected_etag: str | None,
                    owner: str) -> Marker:
        """Write `marker` as `owner` (one claim) if the stored one is still `expected_etag`;
        return it with its ETag."""
        condition = {"IfMatch": expected_etag} if expected_etag else {"IfNoneMatch": "*"}
        try:
            response = await self.client.put_object(
                Bucket=self.bucket, Key=key, Body=marker.body(owner),
                ContentType="application/json", **condition,
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412 or error.response["Error"]["Code"] == "PreconditionFailed":
                # A retried PUT whose first attempt landed also gets 412: if the stored marker is
                # exactly what we meant to write, as us, it is ours.
                stored = await self.load(key)
                if stored.etag and stored.state == marker.state \
                        and await self._owner_of(key) == owner:
                    return stored
                raise OwnershipLost(key) from error
            raise
        return replace(marker, etag=response["ETag"])

    async def _owner_of(self, key: str) -> str | None:
        response = await self.client.get_object(Bucket=self.bucket, Key=key)
        async with response["Body"] as stream:
            return orjson.loads(await stream.read()).get("owner")
