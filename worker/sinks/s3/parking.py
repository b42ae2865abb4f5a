"""Parked merges: an hourly merge that cannot be built is set aside, said, and tried again
when something changed, instead of blocking its partition.

What an operator wants from a merge that cannot be built (a part truncated or corrupt, missing
from the bucket, or of a schema the other parts cannot take):

* **Nothing lost or hidden.** The plan moves from the marker's ``merge`` to its ``parked`` list
  with the reason, the time and each part's ETag; its parts stay as they are under
  ``_sluice/hour-parts/`` (no reader of the query layout sees them, nothing deletes them) and
  in the marker's ``hour_parts``, where an earlier version finds them after a rollback (it then
  tries the merge as before). Objects of the plan that exist already stay.
* **The rest goes on.** The partition's other hours, and later ones, are planned and merged as
  usual; only that hour's objects are missing from the query layout.
* **Said where an operator looks.** Logged once as an error when parked; named in
  ``/health/ready`` (under ``notices``: the worker stays ready, since it consumes, writes and
  acknowledges as before, and an unready pod would block rollouts and node drains for a
  problem no restart fixes) and in the metric ``sluice_s3_merges_parked`` (one series per
  object the plan would write, labelled with its key and the cause): alert on it.
* **Tried again when it can succeed.** Each worker that claims the partition tries once
  (a new version may merge what an older one could not), and afterwards whenever a part of
  the plan changes: its ETags are checked every ``CHECK_SECONDS``, so replacing a bad part with
  a good copy, or deleting it, is picked up within a minute. A try merges the parts that are
  there: an operator who deletes a part gives up its events (the part's offsets are in its
  key, to consume them again from Kafka while they are retained). The try goes through the
  marker like any merge (the plan, reduced to the parts left, is committed first), so it is
  crash-safe and a former owner cannot write beside the partition's new one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from worker.sinks.base import PartitionKey
from worker.sinks.s3.building import Head
from worker.sinks.s3.markers import Marker, MergeOutput, MergePlan, ParkedMerge
from worker.sinks.s3.merge import plan_outputs

# How often the parts of a parked merge are checked for a change (HEAD requests).
CHECK_SECONDS = 60.0


def parked(marker: Marker, plan: MergePlan, cause: str, reason: str,
           heads: dict[str, Head | None]) -> Marker:
    """The marker with `plan` parked: out of ``merge``, into ``parked``. Its parts stay in
    ``hour_parts`` (an earlier version, which knows nothing of ``parked``, still finds them
    there after a rollback; this one plans no part of a parked merge: ``hour_parts``)."""
    entry = ParkedMerge(plan, cause, reason,
                        datetime.now(UTC).isoformat(timespec="seconds"),
                        tuple((part, head.etag if head else None)
                              for part, head in heads.items()))
    rest = tuple(p for p in marker.parked if p.plan.outputs != plan.outputs)
    return replace(marker, merge=None, parked=(*rest, entry))


def unparked(marker: Marker, entry: ParkedMerge, plan: MergePlan | None) -> Marker:
    """The marker with `entry` out of ``parked`` and `plan` (its retry) as the merge under
    way (none if nothing is left to merge); the parts the retry leaves out (gone from the
    bucket) leave ``hour_parts`` too."""
    gone = set(entry.plan.parts) - set(plan.parts if plan else ())
    return replace(marker.without_hour_parts(gone),
                   parked=tuple(p for p in marker.parked if p != entry), merge=plan)


def changed(entry: ParkedMerge, heads: dict[str, Head | None]) -> bool:
    """A part of the parked plan was replaced, deleted or restored since it was parked."""
    then = dict(entry.etags)
    return any((head.etag if head else None) != then.get(part, None)
               for part, head in heads.items())


def retry_plan(entry: ParkedMerge, heads: dict[str, Head | None],
               existing: set[str]) -> MergePlan | None:
    """The plan a retry commits: outputs that exist stay as they are (their parts are only
    deleted); the others are made of their parts still in the bucket, named after them; None
    if nothing is left."""
    outputs = []
    for output in entry.plan.outputs:
        if output.key in existing:
            outputs.append(output)
            continue
        left = [(part, heads[part].size) for part in output.parts  # type: ignore[union-attr]
                if heads.get(part) is not None]
        if len(left) == len(output.parts):
            outputs.append(output)
        elif left:
            directory = output.key.rsplit("/", 1)[0] + "/" if "/" in output.key else ""
            (renamed,) = plan_outputs(directory, left, target_bytes=1 << 62)
            outputs.append(MergeOutput(renamed.key, renamed.parts))
    return MergePlan(tuple(outputs), entry.plan.header) if outputs else None


def describe(key: PartitionKey, entry: ParkedMerge) -> str:
    """One line for a person: which merge, since when, why, and where to read what to do."""
    outputs = entry.plan.outputs
    more = f" (and {len(outputs) - 1} more objects)" if len(outputs) > 1 else ""
    return (f"{key[0]}[{key[1]}]: the hourly merge into {outputs[0].key}{more} is parked "
            f"since {entry.since} ({entry.cause}): {entry.reason}; its parts wait under "
            "_sluice/hour-parts/ and it is tried again when one changes (README: Runbook)")


class ParkedChecks:
    """When this worker looks at a parked merge again: at once after claiming its partition,
    then every CHECK_SECONDS (its parts' ETags, and a try if one changed)."""

    def __init__(self, check_seconds: float = CHECK_SECONDS) -> None:
        self.check_seconds = check_seconds
        self._tried: set[tuple[str, str]] = set()       # (claim, first output key)
        self._checked: dict[tuple[str, str], float] = {}

    def worth_a_look(self, claim: str, entry: ParkedMerge) -> bool:
        """Not looked at under this claim, or not for CHECK_SECONDS."""
        key = (claim, entry.plan.outputs[0].key)
        last = self._checked.get(key)
        return last is None or time.monotonic() - last >= self.check_seconds

    def looked(self, claim: str, entry: ParkedMerge) -> bool:
        """Note a look now; True if it is this claim's first (a try is due whatever changed)."""
        key = (claim, entry.plan.outputs[0].key)
        self._checked[key] = time.monotonic()
        first = key not in self._tried
        self._tried.add(key)
        return first
