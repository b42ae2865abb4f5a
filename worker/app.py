"""The Faust application: broker, topics, the agent, and when offsets may be committed.

Faust commits the offsets of acknowledged messages on its own timer; Sluice controls *what* is
acknowledged (``worker.pipeline.acks``: only records every sink has durably written, in order) and
*when* Faust may consider the streams empty: on a rebalance and at shutdown, Faust calls
``_consumer_wait_empty`` before committing. ``SluiceApp`` replaces it with "flush every sink,
then commit what is acknowledged", bounded by SLUICE_DRAIN_TIMEOUT, instead of Faust's wait for
every delivered message (which would wait forever on events held in an open S3 part).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from typing import Any, cast

import faust
from faust.types import TP, ConsumerT, TransportT
from prometheus_client.registry import CollectorRegistry

from worker.catalog.table import CatalogTable
from worker.config import Settings, SinkName
from worker.deadletters.publisher import DeadLetterPublisher
from worker.events.records import SourceRecord
from worker.kafka.connection import faust_credentials
from worker.kafka.faust_batch_agent import AgentRoute
from worker.kafka.faust_consumer import SluiceConsumer, SluiceTransport
from worker.ops.gc_tuning import tune_for_throughput
from worker.ops.metrics import SluiceCollector
from worker.ops.server import OpsServer
from worker.ops.status_page import StatusPage
from worker.pipeline.progress import Progress
from worker.pipeline.wiring import Pipeline
from worker.sinks.counting import CountingSink
from worker.sinks.elasticsearch.sink import ElasticsearchSink
from worker.sinks.iceberg.sink import IcebergSink
from worker.sinks.s3.sink import S3Sink

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 10.0

# What /health/ready answers outside the running phase (SluiceApp.phase).
PHASES_NOT_READY = {
    "starting": "the worker is starting: the catalog and the sinks are not started yet",
    "stopping": "the worker is stopping: leaving its group, flushing and closing its sinks",
}


def broker_urls(settings: Settings) -> list[str]:
    """Faust's broker URLs (`kafka://host:port`) from the bootstrap servers setting."""
    return [f"kafka://{server}" for server in settings.bootstrap_server_list]


class SluiceApp(faust.App):
    """A Faust app whose rebalances and shutdown flush the Sluice pipeline before committing."""

    sluice_settings: Settings
    pipeline: Pipeline
    catalog: CatalogTable

    ops: OpsServer | None = None
    _background: set[asyncio.Future[None]]
    # `starting`, `running` or `stopping`. The endpoints answer from before the catalog and the
    # sinks start until after they stop: outside `running`, readiness says so and asks no sink
    # (one without a client yet, or a closed one, has nothing to tell).
    phase: str = "starting"

    def _new_transport(self) -> TransportT:
        return SluiceTransport(self.conf.broker_consumer, self)

    async def _on_partitions_assigned(self, assigned: set[TP], *args: Any,
                                      **kwargs: Any) -> None:
        # First of all, before Faust can resume fetching: the pipeline and the sinks must own
        # the partitions before any of their records arrives (see Pipeline.assign).
        partitions = {(tp.topic, tp.partition) for tp in assigned
                      if tp.topic == self.sluice_settings.source_topic}
        self.pipeline.assign(partitions)
        self.pipeline.recovered(partitions)
        await super()._on_partitions_assigned(assigned, *args, **kwargs)

    def recover_partition(self, partition: tuple[str, int]) -> None:
        """Consume a partition again from its oldest unsettled record (see `_rewind`)."""
        self._in_background(self._rewind(partition))

    def regroup(self) -> None:
        """Leave the group's generation (see `Pipeline.contested`); the rebalance that follows
        revokes and assigns partitions as usual."""
        self._in_background(self._regroup())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        # Called from the pipeline's synchronous outcome callbacks: kept referenced until done.
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _regroup(self) -> None:
        try:
            await cast(SluiceConsumer, self.consumer).rejoin_group()
        except Exception:  # noqa: BLE001 (logged; the next conflict asks again)
            log.exception("could not rejoin the group")

    async def _rewind(self, partition: tuple[str, int]) -> None:
        """Rewind the consumer first (what is fetched or queued becomes stale and is dropped),
        then end the partition's generation and start a new one: nothing of the old position
        can be opened in the new generation. Without a record to go back to, rejoin the group
        (the assignment that follows ends the recovery). If either fails, the settle watchdog
        tries again."""
        consumer = cast(SluiceConsumer, self.consumer)
        offset = self.pipeline.acks.oldest_offset(partition)
        try:
            if offset is None:
                await consumer.rejoin_group()
                return
            await consumer.rewind(TP(*partition), offset)
        except Exception:  # noqa: BLE001 (logged; the watchdog tries again)
            log.exception("could not recover %s[%d]; the settle watchdog tries again",
                          *partition)
            self.pipeline.recovered([partition])
            return
        await self.pipeline.forget([partition])
        self.pipeline.assign([partition])
        self.pipeline.recovered([partition])
        log.info("%s[%d]: consuming again from offset %d", *partition, offset)

    async def recover_stalled(self) -> None:
        """The settle watchdog: a partition whose oldest record has waited longer than
        SLUICE_SETTLE_TIMEOUT while every sink answers, and no sink holds its records back on
        purpose, is consumed again."""
        stalled = self.pipeline.stalled(self.sluice_settings.settle_timeout)
        if not stalled or self.pipeline.dead_letter_limit.tripped:
            return  # held on purpose by the dead-letter limit: consuming again trips it again
        held: set[tuple[str, int]] = set()
        for sink in self.pipeline.sinks:
            if await sink.check():
                return  # a destination is down: the wait is explained, readiness says so
            # Pushed back (Elasticsearch's 429s): those records are retried where they are.
            held.update(sink.holding())
        for partition, age in stalled.items():
            if partition not in held:
                self.pipeline.stuck(partition, f"oldest record unsettled for {age:.0f}s")

    async def on_start(self) -> None:
        await super().on_start()
        if self.ops:
            await self.ops.start()
        # Before the consumer starts: the first record must meet started sinks and the catalog.
        await self.catalog.start()
        await self.pipeline.start()
        self.phase = "running"
        tune_for_throughput()

    async def on_stop(self) -> None:
        self.phase = "stopping"
        await super().on_stop()  # stops the consumer: drains the pipeline and commits
        await self.pipeline.stop()
        await self.catalog.stop()
        if self.ops:
            await self.ops.stop()

    def source_partitions(self) -> set[TP]:
        """The source topic's partitions this worker owns now."""
        try:
            assignment = self.consumer.assignment()
        except Exception:  # noqa: BLE001 (not started yet: nothing assigned)
            return set()
        return {tp for tp in assignment if tp.topic == self.sluice_settings.source_topic}

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet committed, per owned source partition."""
        consumer = self.consumer
        result = {}
        for tp in self.source_partitions():
            highwater = consumer.highwater(tp)
            if highwater is None or highwater < 0:
                continue
            committed = consumer._committed_offset.get(tp) or 0  # Faust keeps no public getter
            result[(tp.topic, tp.partition)] = max(highwater - committed, 0)
        return result

    async def readiness(self) -> dict[str, str]:
        """What keeps this worker from being ready; empty when it is."""
        if self.phase in PHASES_NOT_READY:
            return {self.phase: PHASES_NOT_READY[self.phase]}
        problems = {}
        if not self.source_partitions():
            problems["assignment"] = "no source partition assigned (yet)"
        if self.pipeline.dead_letter_limit.tripped:
            problems["dead_letters"] = self.pipeline.dead_letter_limit.tripped
        if self.catalog.problem:
            problems["catalog"] = self.catalog.problem
        stalled = self.pipeline.stalled(self.sluice_settings.settle_timeout)
        if stalled:
            problems["settlement"] = "records waiting longer than SLUICE_SETTLE_TIMEOUT in " + \
                ", ".join(f"{topic}[{partition}] ({age:.0f}s)"
                          for (topic, partition), age in sorted(stalled.items()))
        for sink in self.pipeline.sinks:
            problem = await sink.check()
            if problem:
                problems[f"sink.{sink.name}"] = problem
        return problems

    def notices(self) -> dict[str, str]:
        """What an operator should act on that does not make this worker unready (the S3
        sink's parked merges): ``/health/ready`` names it beside its answer."""
        notices = {}
        for sink in self.pipeline.sinks:
            notice = sink.notice()
            if notice:
                notices[f"sink.{sink.name}"] = notice
        return notices

    async def _consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        """On a rebalance and at shutdown: flush the sinks, then commit what they acknowledged."""
        logger.info("draining the pipeline (%d records in flight)", self.pipeline.acks.in_flight)
        await self.pipeline.drain(self.sluice_settings.drain_timeout)
        if not self.should_stop and not self.sluice_settings.commit_on_rebalance:
            # A rebalance, and a broker that may refuse a commit now (see the setting): what
            # was written since the last periodic commit is consumed again by the next owner,
            # and the sinks recognise it (Elasticsearch by _id, S3 by its offset markers).
            logger.info("rebalance: not committing (SLUICE_COMMIT_ON_REBALANCE=false)")
            return
        try:
            # Bounded: during a rebalance the group coordinator may not answer at all.
            await asyncio.wait_for(consumer.commit(), self.sluice_settings.drain_timeout)
        except TimeoutError:
            logger.warning("commit did not complete within %.0fs: the partitions' next owner "
                           "consumes the uncommitted records again",
                           self.sluice_settings.drain_timeout)


def build_sinks(settings: Settings, pipeline: Pipeline) -> None:
    """Attach the sinks named in SLUICE_SINKS."""
    for name in settings.sinks:
        if name == SinkName.ELASTICSEARCH:
            pipeline.add_sink(lambda outcomes: ElasticsearchSink(outcomes, settings))
        elif name == SinkName.S3:
            pipeline.add_sink(lambda outcomes: S3Sink(outcomes, settings))
        elif name == SinkName.ICEBERG:
            pipeline.add_sink(lambda outcomes: IcebergSink(outcomes, settings))
        elif name == SinkName.COUNTING:
            pipeline.add_sink(
                lambda outcomes: CountingSink(
                    outcomes,
                    max_age_seconds=settings.counting_sink_flush_interval,
                    record_path=settings.counting_sink_record_path,
                )
            )


async def preflight(settings: Settings) -> None:
    """Before a worker starts: topics exist, and every configured sink's destination is usable.

    Raises a sink's start-up error, `worker.ops.startup_checks.StartupError` (its
    `StartupSettingError` for a setting that cannot work here) or KafkaConnectionFailure, with a
    message that says what to check.
    """
    from worker.kafka.topics import ensure_topics
    from worker.ops.startup_checks import check_codecs, check_state_dir, wait_for_broker
    from worker.sinks.elasticsearch.client import preflight as elasticsearch_preflight
    from worker.sinks.s3.client import preflight as s3_preflight

    check_state_dir(settings)  # before anything waits: the app's start would fail on it
    check_codecs()
    # Waits for an unreachable broker; a TLS or SASL refusal fails at once, naming the settings.
    await wait_for_broker(settings)
    await ensure_topics(settings)
    if SinkName.ELASTICSEARCH in settings.sinks:
        await elasticsearch_preflight(settings)
    if SinkName.S3 in settings.sinks:
        await s3_preflight(settings)
    if SinkName.ICEBERG in settings.sinks:
        await iceberg_preflight(settings)


async def iceberg_preflight(settings: Settings) -> None:
    """The warehouse's bucket answers (created if missing, as the S3 sink's), then the catalog
    opens and the table exists (created if missing); raises IcebergStartupError or
    S3StartupError naming what to fix."""
    from worker.sinks.iceberg.client import preflight as table_preflight
    from worker.sinks.s3.client import preflight as s3_preflight

    warehouse = settings.iceberg_warehouse
    if warehouse.startswith(("s3://", "s3a://")):
        bucket = warehouse.split("://", 1)[1].split("/", 1)[0]
        await s3_preflight(settings.model_copy(update={"s3_bucket": bucket}))
    await asyncio.to_thread(table_preflight, settings)


def create_app(settings: Settings, web_socket: socket.socket | None = None) -> SluiceApp:
    """A configured app with its pipeline. Topics must already exist (`worker.kafka.topics`).

    `web_socket` is the endpoints' listening socket when the caller bound it already
    (`worker.ops.startup_checks.bind_web_port`); otherwise the endpoints bind SLUICE_WEB_PORT
    themselves.
    """
    # Faust creates only the last level of its data directory.
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    app = SluiceApp(
        settings.app_id,
        broker=broker_urls(settings),
        broker_credentials=faust_credentials(settings),
        # Nothing local needs to persist: the catalog is re-read from its topic at start.
        store="memory://",
        datadir=str(settings.state_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # A new consumer group starts at the oldest record: nothing produced before the first
        # worker started is skipped.
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=settings.rebalance_timeout,
        consumer_group_instance_id=settings.group_instance_id,
        consumer_metadata_max_age_ms=int(settings.metadata_refresh_interval * 1000),
        # Sluice serves its own endpoints (worker.ops.server); Faust's web server stays off.
        web_enabled=False,
        # Sluice never declares topics through a subscription: they are created up front.
        topic_allow_declare=False,
    )
    progress = Progress()
    app._background = set()
    app.sluice_settings = settings
    app.catalog = CatalogTable(settings)
    app.pipeline = Pipeline(settings, DeadLetterPublisher(settings), app.catalog.lookup, progress)
    app.pipeline.recover = app.recover_partition
    app.pipeline.regroup = app.regroup
    build_sinks(settings, app.pipeline)
    if settings.web_port:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(SluiceCollector(app.pipeline, app.catalog, app.lag))
        app.ops = OpsServer(settings.web_host, settings.web_port, registry, app.readiness,
                            web_socket, page=StatusPage("worker"), notices=app.notices)

    source = app.topic(
        settings.source_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    # The source topic is read in batches: each fetched batch of a partition (at most
    # SLUICE_BATCH_MAX_RECORDS records) is one event of the `sluice-pipeline` agent, and the
    # commit timer commits each partition's settled offset (worker.kafka.faust_batches,
    # worker.pipeline.acks).
    async def handle(tp: TP, records: list[SourceRecord]) -> None:
        await app.pipeline.submit_batch(records)

    route = AgentRoute(app, handle, name="sluice-pipeline")
    app.topics.add(source)  # subscribed here: no agent reads the topic message by message
    cast(SluiceConsumer, app.consumer).attach(
        [settings.source_topic], route,
        lambda tp: app.pipeline.committable((tp.topic, tp.partition)),
        max_records_per_partition=settings.batch_max_records,
        all_settled=app.pipeline.acks.all_settled,
    )

    @app.timer(interval=PROGRESS_INTERVAL_SECONDS)
    async def report_progress() -> None:
        log.info(
            "progress: %s in_flight=%d catalog_keys=%d",
            progress.line(), app.pipeline.acks.in_flight, len(app.catalog),
        )

    @app.timer(interval=min(10.0, settings.settle_timeout / 4))
    async def settle_watchdog() -> None:
        await app.recover_stalled()

    @app.on_partitions_assigned.connect
    async def log_assignment(sender: Any, assigned: set[TP], **_: Any) -> None:
        log.info("partitions assigned: %s", describe_partitions(assigned, settings.source_topic),
                 extra={"topic": settings.source_topic, "partitions": sorted(
                     tp.partition for tp in assigned if tp.topic == settings.source_topic)})

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        # After the drain and commit: what is still unfinished belongs to the next owner now.
        await app.pipeline.forget({(tp.topic, tp.partition) for tp in revoked})
        log.info("partitions revoked: %s", describe_partitions(revoked, settings.source_topic))

    return app


def describe_partitions(partitions: set[TP], topic: str) -> str:
    """`sluice-events[0,2,3]` for the partitions of one topic (others are Faust's own)."""
    numbers = sorted(tp.partition for tp in partitions if tp.topic == topic)
    return f"{topic}[{','.join(map(str, numbers))}]" if numbers else f"{topic}[] (none)"
