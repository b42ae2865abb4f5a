"""Per-partition markers: how far a partition is in S3, so no event is written there twice.

One small JSON object per source partition (``_sluice/markers/<topic>/<partition>.json``):

``{"next_offset": N, "pending": {"next_offset": M, "keys": [...]} | null, "owner": "..."}``

In ``hourly`` publication (SLUICE_S3_PUBLISH) the marker also lists the partition's hour parts
not yet merged (``hour_parts``) and the merge under way (``merge``: its output keys and the
parts each is made of); see ``worker.sinks.s3.hourly``.

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
class Marker:
    next_offset: int = 0
    pending: Pending | None = None
    etag: str | None = None
    # Hourly publication: committed hour parts not merged yet, and the merge under way.
    hour_parts: tuple[str, ...] = ()
    merge: MergePlan | None = None

    def body(self, owner: str) -> bytes:
        pending = (
            {"next_offset": self.pending.next_offset, "keys": self.pending.keys,
             "staged": self.pending.staged}
            if self.pending else None
        )
        data: dict[str, object] = {"next_offset": self.next_offset, "pending": pending,
                                   "owner": owner}
        if self.hour_parts:
            data["hour_parts"] = list(self.hour_parts)
        if self.merge:
            data["merge"] = self.merge.as_json()
        return orjson.dumps(data)

    def moved(self, next_offset: int, pending: Pending | None = None) -> Marker:
        """This marker at another offset (and pending flush), its hourly state kept."""
        return replace(self, next_offset=next_offset, pending=pending)

    @property
    def state(self) -> tuple[object, ...]:
        """What the marker says, without its ETag."""
        return (self.next_offset, self.pending, self.hour_parts, self.merge)


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
                            list(pending.get("staged") or []))
            if pending else None,
            etag=response["ETag"],
            hour_parts=tuple(data.get("hour_parts") or ()),
            merge=MergePlan.from_json(merge) if merge else None,
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
