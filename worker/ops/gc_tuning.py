"""Garbage-collector settings for a worker: fewer collections on a hot path full of live objects.

A worker keeps many objects alive at once (the documents of events buffered for the sinks, the
records of batches in flight) and allocates several per event. With CPython's default
thresholds (700, 10, 10) a young collection runs every 700 allocations and an older one every
few thousand, each scanning more of those live objects: measured on the benchmark's events,
decoding, normalising and encoding cost 2-3 times as much as with collections made rare. Sluice's
own objects are acyclic and freed by reference counting; collections only matter for the cycles
that libraries leave behind, which a collection every 100,000 allocations still reclaims.
"""

from __future__ import annotations

import gc

# Young collections every 100,000 net allocations instead of 700; older generations as often
# (relative to the young ones) as CPython's defaults make them.
THRESHOLDS = (100_000, 10, 10)


def tune_for_throughput() -> None:
    """Move what start-up created out of the collector's sight and raise the thresholds."""
    gc.collect()
    gc.freeze()  # the app, its modules and settings live as long as the process
    gc.set_threshold(*THRESHOLDS)
