"""The Elasticsearch sink: bulk batches, idempotent ids, per-item retries and dead letters.

What it promises
----------------
* **Idempotent writes.** Every document's ``_id`` is the event's ``event_id``: a retry, a replay
  or a record consumed again after a rebalance overwrites instead of duplicating. (Data streams
  take ``create`` operations; a 409 "already exists" then counts as written.)
* **Batching.** A bulk request is sent when it holds SLUICE_ELASTICSEARCH_BATCH_MAX_EVENTS events
  or SLUICE_ELASTICSEARCH_BATCH_MAX_BYTES bytes, or when its oldest event has waited
  SLUICE_ELASTICSEARCH_BATCH_MAX_AGE seconds; up to SLUICE_ELASTICSEARCH_MAX_IN_FLIGHT_REQUESTS
  requests are in flight. ``write`` waits while that much is buffered (backpressure).
* **Per-item outcomes.** ``_bulk`` answers 200 even when some documents fail; each item is
  judged alone. 2xx: written. 429, ``es_rejected_execution_exception``,
  ``circuit_breaking_exception`` and ``cluster_block_exception`` (a read-only index): the
  cluster asks to wait, so the item is held and retried alone with backoff **without an attempt
  limit**; past SLUICE_ELASTICSEARCH_BACKPRESSURE_TIMEOUT the sink reports unready and keeps
  waiting (``worker.sinks.elasticsearch.backpressure``). Other 5xx: retried alone up to
  SLUICE_ELASTICSEARCH_ITEM_MAX_ATTEMPTS attempts, then dead-lettered as retriable. Rejected for
  its content (mapping conflict, parsing error, …): dead-lettered at once with Elasticsearch's
  error type and reason.
* **Whole-request failures** (connection refused or reset, timeouts, 429/5xx for the request,
  401/403 after start-up) are retried with backoff **without limit**: nothing is acknowledged
  meanwhile, buffers fill, and consumption pauses until Elasticsearch is back. A whole request
  refused with 429 or one of the errors above (the indexing-pressure limit answers so) holds
  its documents as backpressure, as per item. A 413 (request too large) splits the batch in two.
* **Start-up checks** (``worker.sinks.elasticsearch.client``) fail fast with a message that
  says what to check: wrong credentials (401), no privilege to install the index template
  (403), Elasticsearch unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import (
    ApiError,
    AsyncElasticsearch,
    AuthorizationException,
)

from worker.config import Settings
from worker.events import json_codec
from worker.events.errors import SinkRejected, SinkUnavailable
from worker.events.event_time import EventTimeWindow
from worker.events.records import Event
from worker.sinks.base import NOT_STARTED, PartitionKey, Sink, SinkFailure, SinkOutcomes
from worker.sinks.elasticsearch.backpressure import Backpressure, is_backpressure
from worker.sinks.elasticsearch.client import (
    ElasticsearchStartupError,
    describe_cluster,
    make_client,
    preflight,
)
from worker.sinks.elasticsearch.naming import IndexNamer
from worker.sinks.elasticsearch.triage import error_type_of, reason_of, rejection

log = logging.getLogger(__name__)

NAME = "elasticsearch"
# The client and the start-up check live in client.py; importable from here too.
__all__ = ["NAME", "ElasticsearchSink", "ElasticsearchSinkStats", "ElasticsearchStartupError",
           "describe_cluster", "make_client", "preflight"]
_BULK_FILTER = "errors,items.*.status,items.*.error"


@dataclass
class ElasticsearchSinkStats:
    """Counters the operations endpoints expose."""

    indexed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    request_failures: int = 0
    bulk_requests: int = 0
    bulk_seconds: float = 0.0
    in_flight_requests: int = 0


@dataclass(slots=True, eq=False)
class _Item:
    """One event on its way into a bulk request, until it has an outcome (`done`)."""

    event: Event
    lines: bytes
    partition: PartitionKey
    generation: int
    attempts: int = 0
    done: bool = False


@dataclass
class _Batch:
    items: list[_Item] = field(default_factory=list)
    size: int = 0
    started: float = 0.0


class ElasticsearchSink(Sink):
    """Writes event documents with `_bulk`; see the module docstring for what it promises."""

    name = NAME

    def __init__(self, outcomes: SinkOutcomes, settings: Settings) -> None:
        super().__init__(outcomes)
        self.settings = settings
        self.stats = ElasticsearchSinkStats()
        self._namer = IndexNamer(settings.elasticsearch_index, EventTimeWindow(
            settings.event_time_max_past, settings.event_time_max_future))
        self._operation = b"create" if settings.elasticsearch_data_stream else b"index"
        self._client: AsyncElasticsearch | None = None
        self._batch = _Batch()
        self._requests: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.elasticsearch_max_in_flight_requests)
        # Events buffered or in flight; `write` waits while this reaches the bound. Counted per
        # partition too, so that forgetting a partition frees its room at once, even while a
        # request holding its events hangs.
        self._outstanding = 0
        self._outstanding_by_partition: Counter[PartitionKey] = Counter()
        self._generations: dict[PartitionKey, int] = {}
        self._max_outstanding = settings.elasticsearch_batch_max_events * (
            settings.elasticsearch_max_in_flight_requests + 1
        )
        self._room = asyncio.Event()
        self._room.set()
        self._ticker: asyncio.Task[None] | None = None
        self.backpressure = Backpressure(settings.elasticsearch_backpressure_timeout)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._client = make_client(self.settings)
        self._ticker = asyncio.create_task(self._send_when_old(), name="elasticsearch-age")

    async def check(self) -> str | None:
        if self._client is None:
            return NOT_STARTED
        try:
            await self._client.info()
        except AuthorizationException:
            return None  # answering, and the credentials are valid: enough for a write-only key
        except (ApiError, TransportError, TransportConnectionError, ConnectionTimeout) as error:
            return f"{describe_cluster(self.settings)}: {type(error).__name__}: {error}"
        return self.backpressure.problem()

    def holding(self) -> dict[PartitionKey, str]:
        """Partitions with documents refused with backpressure (429 and the like), held and
        retried."""
        why = (f"Elasticsearch holds back {self.backpressure.held} documents "
               f"({self.backpressure.reason})")
        return {partition: why for partition in self.backpressure.partitions()}

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for task in self._requests:
            task.cancel()
        await asyncio.gather(*self._requests, return_exceptions=True)
        if self._client:
            await self._client.close()
            self._client = None  # closed: `check` says "not started" rather than asking it

    # --- the contract ---------------------------------------------------------------------

    async def write(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.cancelled:
                continue
            position = event.position
            key = (position.topic, position.partition)
            item = _Item(event, self._encode(event), key, self._generations.get(key, 0))
            if not self._batch.items:
                self._batch.started = time.monotonic()
            self._batch.items.append(item)
            self._batch.size += len(item.lines)
            self._outstanding += 1
            self._outstanding_by_partition[key] += 1
            if (len(self._batch.items) >= self.settings.elasticsearch_batch_max_events
                    or self._batch.size >= self.settings.elasticsearch_batch_max_bytes):
                self._send_batch()
        while self._outstanding >= self._max_outstanding:
            self._room.clear()
            await self._room.wait()

    async def flush(self) -> None:
        self._send_batch()
        while self._requests:
            # asyncio.wait, not gather: a cancelled flush (a drain that timed out) must not
            # cancel the deliveries, whose events would then never get an outcome.
            await asyncio.wait(list(self._requests))

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        for key in partitions:
            self._generations[key] = self._generations.get(key, 0) + 1
            self._outstanding -= self._outstanding_by_partition.pop(key, 0)
        gone = set(partitions)
        kept = [i for i in self._batch.items if i.partition not in gone]
        self._batch.items = kept
        self._batch.size = sum(len(i.lines) for i in kept)
        self._wake_writers()

    # --- batching -------------------------------------------------------------------------

    def _encode(self, event: Event) -> bytes:
        document = event.document
        index = self._namer.for_event(event)
        if self.settings.elasticsearch_data_stream:
            body = json_codec.dumps({**document, "@timestamp": document["timestamp"]})
        else:
            body = event.encoded or json_codec.dumps(document)
        action = orjson.dumps({"_index": index, "_id": event.event_id})
        return b'{"' + self._operation + b'":' + action + b"}\n" + body + b"\n"

    def _send_batch(self) -> None:
        if not self._batch.items:
            return
        items, self._batch = self._batch.items, _Batch()
        self._spawn(items)

    async def _send_when_old(self) -> None:
        max_age = self.settings.elasticsearch_batch_max_age
        while True:
            await asyncio.sleep(max_age / 4)
            if self._batch.items and time.monotonic() - self._batch.started >= max_age:
                self._send_batch()

    def _finish(self, items: Sequence[_Item]) -> None:
        """These items have an outcome (or no longer need one): free their room, once."""
        for item in items:
            if item.done:
                continue
            item.done = True
            self.backpressure.release(id(item))
            if self._generations.get(item.partition, 0) == item.generation:
                self._outstanding -= 1
                self._outstanding_by_partition[item.partition] -= 1
        self._wake_writers()

    def _wake_writers(self) -> None:
        if self._outstanding < self._max_outstanding:
            self._room.set()

    def _open_items(self, items: list[_Item]) -> list[_Item]:
        """The items that still need an outcome; those of revoked partitions are let go."""
        revoked = [item for item in items if not item.done and item.event.cancelled]
        self._finish(revoked)
        return [item for item in items if not item.done]

    # --- one batch, until every item has an outcome ---------------------------------------

    async def _deliver(self, items: list[_Item]) -> None:
        """Send a batch until every item has an outcome, each exactly once.

        `items` is this task's share of the work: a split hands the other half to a task of
        its own, and every retry sends only the items still open. Unexpected errors are logged
        and the open items retried: a bug must not lose events silently.
        """
        request_attempt = 0
        try:
            while items := self._open_items(items):
                try:
                    async with self._slots:
                        body = await self._bulk(items)
                    retry = await self._judge(items, body)
                except _RequestRefused as refusal:
                    if len(items) == 1:
                        await self._fail([SinkFailure(items[0].event, SinkRejected(
                            f"{refusal} for this document alone", sink=NAME),
                            items[0].attempts + 1)], items)
                        return
                    half = len(items) // 2
                    self._spawn(items[half:])
                    items = items[:half]
                    continue
                except _RequestFailed as failure:
                    request_attempt += 1
                    self.stats.request_failures += 1
                    if failure.backpressure:
                        for item in items:
                            self.backpressure.hold(id(item), failure.backpressure, item.partition)
                    delay = self._backoff(request_attempt)
                    log.warning("bulk request of %d documents failed (%s); retry %d in %.1fs",
                                len(items), failure, request_attempt, delay,
                                extra={"documents": len(items), "error_class": "BulkRequestFailed",
                                       "attempt": request_attempt})
                    await asyncio.sleep(delay)
                    continue
                except Exception:  # noqa: BLE001
                    log.exception("unexpected error delivering %d documents; retrying the open "
                                  "ones", len(items))
                    await asyncio.sleep(self._backoff(3))
                    continue
                request_attempt = 0
                items = retry
                if items:
                    await asyncio.sleep(self._backoff(max(item.attempts for item in items)))
        finally:
            # Only a stopping worker cancels a delivery: its records are not committed.
            self._finish(items)

    def _spawn(self, items: list[_Item]) -> None:
        task = asyncio.create_task(self._deliver(items), name="elasticsearch-bulk-split")
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _bulk(self, items: list[_Item]) -> dict[str, Any]:
        assert self._client is not None, "ElasticsearchSink.start() was not called"
        payload = b"".join(item.lines for item in items)
        started = time.monotonic()
        self.stats.in_flight_requests += 1
        try:
            response = await self._client.bulk(operations=payload, filter_path=_BULK_FILTER)
        except ApiError as error:
            error_type = error_type_of(error)
            if is_backpressure(error.meta.status, error_type):
                # The whole request (Elasticsearch's indexing-pressure limit answers so): the
                # cluster asks to wait, as for one document.
                raise _RequestFailed(f"HTTP {error.meta.status} {error.message}",
                                     backpressure=f"{error_type or error.meta.status}: "
                                                  f"{error.message}") from error
            if error.meta.status in (400, 413):
                # Too large, or a document the whole request chokes on: halve until found.
                raise _RequestRefused(f"HTTP {error.meta.status} {error.message}") from error
            if error.meta.status in (401, 403):
                log.error("Elasticsearch refused the credentials (%d) for a bulk request: "
                          "check SLUICE_ELASTICSEARCH_API_KEY or the user's privileges",
                          error.meta.status)
            raise _RequestFailed(f"HTTP {error.meta.status} {error.message}") from error
        except (TransportConnectionError, ConnectionTimeout, TransportError) as error:
            raise _RequestFailed(f"{type(error).__name__}: {error}") from error
        finally:
            self.stats.in_flight_requests -= 1
        self.stats.bulk_requests += 1
        self.stats.bulk_seconds += time.monotonic() - started
        return response.body

    async def _judge(self, items: list[_Item], body: dict[str, Any]) -> list[_Item]:
        """Report written and rejected items; return the ones to retry."""
        results = body.get("items") or []
        if len(results) != len(items):
            raise _RequestFailed(f"bulk answered {len(results)} items for {len(items)} sent")
        written: list[_Item] = []
        rejected: list[SinkFailure] = []
        rejected_items: list[_Item] = []
        retry: list[_Item] = []
        held = 0
        for item, result in zip(items, results, strict=True):
            item.attempts += 1
            outcome = next(iter(result.values()))
            status = int(outcome.get("status", 500))
            error = outcome.get("error") or {}
            error_type = error.get("type", "") if isinstance(error, dict) else str(error)
            if status < 300 or (status == 409 and self._operation == b"create"):
                written.append(item)
            elif is_backpressure(status, error_type):
                # The cluster asks to wait: no attempt limit; the time limit is readiness's.
                self.backpressure.hold(id(item), f"{error_type or status}: {reason_of(error)}",
                                       item.partition)
                held += 1
                retry.append(item)
            elif status >= 500:
                self.backpressure.release(id(item))
                if item.attempts >= self.settings.elasticsearch_item_max_attempts:
                    rejected_items.append(item)
                    rejected.append(SinkFailure(item.event, SinkUnavailable(
                        f"{error_type or status}: still refused after {item.attempts} attempts: "
                        f"{reason_of(error)}", sink=NAME), item.attempts))
                else:
                    retry.append(item)
            else:
                rejected_items.append(item)
                rejected.append(SinkFailure(item.event, rejection(status, error, NAME),
                                            item.attempts))
        if written:
            self.stats.indexed += len(written)
            self._finish(written)
            self.outcomes.delivered(NAME, [item.event for item in written])
        if rejected:
            await self._fail(rejected, rejected_items)
        if retry:
            self.stats.retried += len(retry)
            log.info("%d of %d documents refused for now (%d asking to wait, %d 5xx): retrying "
                     "them alone", len(retry), len(items), held, len(retry) - held)
        return retry

    async def _fail(self, failures: list[SinkFailure], items: list[_Item]) -> None:
        """Dead-letter these items; they are done whatever happens (no second report)."""
        self.stats.dead_lettered += len(failures)
        self._finish(items)
        await self.outcomes.failed(NAME, failures)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped."""
        ceiling = min(self.settings.elasticsearch_retry_max,
                      self.settings.elasticsearch_retry_initial * 2 ** max(attempt - 1, 0))
        return random.uniform(ceiling / 2, ceiling)


class _RequestFailed(Exception):
    """The whole bulk request failed; it is retried. ``backpressure`` says why when the cluster
    asked to wait (its documents are then held, as for a per-item 429)."""

    def __init__(self, message: str, backpressure: str | None = None) -> None:
        super().__init__(message)
        self.backpressure = backpressure


class _RequestRefused(Exception):
    """Elasticsearch refused the whole request (413 or 400): the batch is split in halves."""
