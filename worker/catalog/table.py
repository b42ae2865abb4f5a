"""The catalog table: every worker's own, complete, live copy of the catalog topic.

Events are partitioned by their producer's key, not by API key, so any worker may need any
catalog entry: the table must be *global* (every worker holds every key), not partitioned like a
Faust ``Table`` (which would need the events repartitioned by API key first: an extra topic and
hop per event). The table is small (one entry per API key) and read-mostly.

Faust's own ``GlobalTable`` is the natural fit on paper, and was tried (two workers on the local
broker, writes by a plain producer). It applies outside writes live (in under 0.3 s) while the
group is stable, but:

* its changelog must be named ``<app_id>-<table>-changelog``: Faust's partition assignor ignores
  a custom ``changelog_topic`` and the first rebalance hangs (``KeyError`` in the assignor), so
  users could not choose the catalog topic's name;
* its keys must be JSON-encoded unless configured raw, and one record it cannot decode stops
  recovery, which blocks event processing on every worker;
* it applies nothing while the group rebalances: an entry written during a rebalance after a
  worker was killed arrived 20 s late or, in two of four runs, not at all;
* Faust documents an endless-recovery risk with several workers.

So each worker reads the compacted catalog topic itself: a consumer outside any group, assigned
every partition, from the beginning, for as long as the worker runs. Writes by any client
(including tombstones) reach every worker within SLUICE_CATALOG_POLL_INTERVAL, whatever the
group is doing, and a record that is not a valid entry is logged and skipped.

A reader that has caught up pauses its partitions and only compares end offsets once per poll
interval, instead of fetching without a break: a broker that answers an empty fetch at once
rather than holding it for ``fetch_max_wait_ms`` (the local emulator does) would otherwise keep a
core busy and slow the worker's consumer thread through the GIL (measured: an idle aiokafka
consumer used 4.2 of 5 CPU seconds on the local stack).

At start the worker waits until it has read up to the end offsets it saw, so the first events
are already enriched with the whole catalog (bounded by SLUICE_CATALOG_LOAD_TIMEOUT).

The reader is supervised: if it dies (an unexpected error), the error is logged, counted
(``sluice_catalog_reader_failures_total``), reported by ``/health/ready`` (``catalog``) until it
reads again, and the reader restarts with backoff; a stale catalog never goes unnoticed. It
follows the topic's partitions: partitions added to the catalog topic (seen at the consumer's
metadata refresh, SLUICE_METADATA_REFRESH_INTERVAL) are read from their beginning, the others
keep their place.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from worker.catalog.entries import CatalogEntry
from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.topics import partition_counts

log = logging.getLogger(__name__)


class CatalogTable:
    """API key id → catalog entry, kept up to date from the catalog topic."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._entries: dict[str, CatalogEntry] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self.invalid_records = 0
        self.updates = 0
        self.reader_failures = 0
        # Why the catalog may be stale now (the reader died and is restarting); None when fine.
        self.problem: str | None = None
        self._partitions: list[TopicPartition] = []

    def lookup(self, api_key_id: str) -> CatalogEntry | None:
        """The entry for an API key id, or None if the catalog does not know it."""
        return self._entries.get(api_key_id)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[CatalogEntry]:
        """Every entry, sorted by API key id."""
        return [self._entries[key] for key in sorted(self._entries)]

    async def start(self) -> None:
        """Start reading; return once the catalog is loaded (or the load timeout passed)."""
        topic = self.settings.catalog_topic
        partitions = (await partition_counts(self.settings, [topic]))[topic]
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            client_id=f"{self.settings.app_id}-catalog",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=int(self.settings.metadata_refresh_interval * 1000),
        )
        await self._consumer.start()
        self._partitions = tps
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end_offsets = await self._consumer.end_offsets(tps)
        started = time.monotonic()
        self._reader = asyncio.create_task(self._supervise(end_offsets), name="catalog-reader")
        try:
            await asyncio.wait_for(self._loaded.wait(), self.settings.catalog_load_timeout)
            log.info(
                "catalog loaded: %d API keys from %s in %.1fs",
                len(self._entries), topic, time.monotonic() - started,
            )
        except TimeoutError:
            log.warning(
                "catalog not fully loaded after %.0fs (SLUICE_CATALOG_LOAD_TIMEOUT): starting with "
                "%d API keys; events with other keys are marked unenriched until it catches up",
                self.settings.catalog_load_timeout, len(self._entries),
            )

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    async def _supervise(self, end_offsets: dict[TopicPartition, int]) -> None:
        """Run the reader for as long as the worker runs; restart it (with backoff) if it dies,
        saying so in the log, the metrics and readiness meanwhile."""
        delay = 1.0
        restarting = False
        while True:
            try:
                if restarting:
                    # The records of the batch it died on were fetched, perhaps not applied:
                    # read the (compacted, small) topic again rather than skip an entry.
                    assert self._consumer is not None
                    await self._consumer.seek_to_beginning(*self._partitions)
                await self._read(end_offsets)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 (a dead reader would go unnoticed)
                self.reader_failures += 1
                self.problem = (f"the catalog reader failed ({type(error).__name__}: {error}); "
                                f"restarting in {delay:.0f}s: the catalog may be stale")
                log.exception("catalog reader failed; restarting in %.0fs", delay,
                              extra={"error_class": "CatalogReaderFailed"})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                restarting = True

    async def _read(self, end_offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        waiting_for = {tp: end for tp, end in end_offsets.items() if end > 0}
        if not waiting_for:
            self._loaded.set()
        while True:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=100 if self._loaded.is_set() else 500, max_records=5000)
            except KafkaError as error:
                log.warning("catalog read failed, retrying: %s", error)
                await asyncio.sleep(1.0)
                continue
            self.problem = None  # reading again
            if not batches and self._loaded.is_set():
                await self._idle()
                continue
            for tp, messages in batches.items():
                for message in messages:
                    self._apply(message.key, message.value, message.offset)
                if tp in waiting_for and messages and messages[-1].offset + 1 >= waiting_for[tp]:
                    del waiting_for[tp]
            if waiting_for and not self._loaded.is_set():
                # A compacted partition may end in offsets that no longer exist: check positions.
                for tp in list(waiting_for):
                    if await self._consumer.position(tp) >= waiting_for[tp]:
                        del waiting_for[tp]
            if not waiting_for:
                self._loaded.set()

    async def _idle(self) -> None:
        """Caught up: stop fetching, and look at the end offsets once per poll interval until
        a partition has something new, or the topic has new partitions."""
        assert self._consumer is not None
        partitions = self._partitions
        self._consumer.pause(*partitions)
        try:
            while True:
                await asyncio.sleep(self.settings.catalog_poll_interval)
                if await self._follow_new_partitions():
                    return
                try:
                    ends = await self._consumer.end_offsets(partitions)
                except KafkaError as error:
                    log.warning("catalog poll failed, retrying: %s", error)
                    continue
                for tp in partitions:
                    if ends[tp] > await self._consumer.position(tp):
                        return
        finally:
            self._consumer.resume(*partitions)

    async def _follow_new_partitions(self) -> bool:
        """Read partitions added to the catalog topic from their beginning; True if any."""
        assert self._consumer is not None
        topic = self.settings.catalog_topic
        known = {tp.partition for tp in self._partitions}
        added = sorted((self._consumer.partitions_for_topic(topic) or set()) - known)
        if not added:
            return False
        # assign() forgets positions: keep the old partitions' places, start the new ones.
        positions = {tp: await self._consumer.position(tp) for tp in self._partitions}
        new = [TopicPartition(topic, partition) for partition in added]
        self._consumer.resume(*self._partitions)
        self._partitions = [*self._partitions, *new]
        self._consumer.assign(self._partitions)
        for tp, offset in positions.items():
            self._consumer.seek(tp, offset)
        await self._consumer.seek_to_beginning(*new)
        log.info("catalog topic %s has new partitions %s: reading them", topic, added)
        return True

    def _apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        if not key:
            self.invalid_records += 1
            log.warning("catalog record at offset %d has no key (API key id): ignored", offset)
            return
        api_key_id = key.decode(errors="replace")
        self.updates += 1
        if value is None:
            self._entries.pop(api_key_id, None)
            return
        try:
            self._entries[api_key_id] = CatalogEntry.from_topic(key, value)
        except (ValueError, ValidationError) as error:
            self.invalid_records += 1
            self._entries.pop(api_key_id, None)
            log.warning(
                "catalog record for %s at offset %d is not a valid entry (%s): key treated as "
                "unknown", api_key_id, offset, str(error).splitlines()[0],
            )
