"""Elasticsearch asking the sink to wait: which answers mean it, and how long it has lasted.

A per-item 429, ``es_rejected_execution_exception`` or ``circuit_breaking_exception`` (the
cluster is overloaded) and a ``cluster_block_exception`` (an index made read-only, typically
after the disk flood-stage watermark) say nothing about the document: the same document is
accepted once the cluster recovers. Dead-lettering them would empty the live stream into the
dead-letter topic for as long as the cluster is unwell. They are held instead: retried with
backoff **without an attempt limit**, never acknowledged meanwhile, so the sink's buffers fill
and consumption pauses (the in-flight bound), exactly as for a whole-request outage.

The limit is in time, not attempts: once a document has been held longer than
SLUICE_ELASTICSEARCH_BACKPRESSURE_TIMEOUT, the sink reports itself unready (``/health/ready``,
an error in the log) and **keeps waiting**, as a Kafka Connect sink task does when it is told to
retry: an operator must act (free disk, lift the block, scale the cluster), and nothing the
worker could do alone (dead-lettering, dropping) would be better than waiting. Because the sink
reports the problem, the settle watchdog does not rewind its partitions meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from worker.sinks.base import PartitionKey

log = logging.getLogger(__name__)

# Per-item error types that mean "not now" rather than "not this document".
BACKPRESSURE_ITEM_ERRORS = frozenset({
    "es_rejected_execution_exception",
    "circuit_breaking_exception",
    "cluster_block_exception",
})

_ADVICE = {
    "cluster_block_exception": "an index is blocked for writes (read-only after the disk "
    "flood-stage watermark?): free disk space or add nodes; Elasticsearch 7.4+ lifts the block "
    "itself once disk usage drops, older versions need `index.blocks.read_only_allow_delete: "
    "null` in the index settings",
    "circuit_breaking_exception": "the cluster is short of heap: check the nodes' memory and "
    "the size of bulk requests (SLUICE_ELASTICSEARCH_BATCH_MAX_BYTES)",
}
_DEFAULT_ADVICE = "the cluster is overloaded: check `GET _cat/thread_pool/write`, the nodes' " \
    "load, and scale the cluster or lower SLUICE_ELASTICSEARCH_MAX_IN_FLIGHT_REQUESTS"


def is_backpressure(status: int, error_type: str) -> bool:
    """True for a per-item answer that asks the sink to wait rather than reject the document."""
    return status == 429 or error_type in BACKPRESSURE_ITEM_ERRORS


@dataclass
class Backpressure:
    """The documents Elasticsearch is holding back, since when, and why (the latest reason)."""

    timeout: float
    _since: dict[int, float] = field(default_factory=dict)
    _partitions: dict[int, PartitionKey] = field(default_factory=dict)
    reason: str = ""
    _reported: bool = False

    def hold(self, key: int, reason: str, partition: PartitionKey) -> None:
        """A document (by a key of the caller's) of `partition` was refused with
        backpressure."""
        self._since.setdefault(key, time.monotonic())
        self._partitions[key] = partition
        self.reason = reason

    def release(self, key: int) -> None:
        """The document has an outcome, or no longer needs one."""
        self._since.pop(key, None)
        self._partitions.pop(key, None)
        if not self._since:
            if self._reported:
                log.info("Elasticsearch accepts documents again after backpressure")
            self._reported = False

    @property
    def held(self) -> int:
        """Documents being held now."""
        return len(self._since)

    def partitions(self) -> set[PartitionKey]:
        """The partitions whose documents are being held now."""
        return set(self._partitions.values())

    def seconds(self) -> float:
        """How long the longest-held document has waited (0 when none is held)."""
        if not self._since:
            return 0.0
        return time.monotonic() - min(self._since.values())

    def problem(self) -> str | None:
        """Past the timeout: what readiness reports (and, the first time, the log); else None."""
        waited = self.seconds()
        if not self._since or waited <= self.timeout:
            return None
        error_type = self.reason.split(":", 1)[0]
        message = (
            f"Elasticsearch has refused {self.held} documents for {waited:.0f}s, longer than "
            f"SLUICE_ELASTICSEARCH_BACKPRESSURE_TIMEOUT ({self.timeout:g}s), with {self.reason}: "
            f"they are held, not dead-lettered, and consumption is paused; "
            f"{_ADVICE.get(error_type, _DEFAULT_ADVICE)}"
        )
        if not self._reported:
            self._reported = True
            log.error("%s", message, extra={"error_class": "ElasticsearchBackpressure"})
        return message
