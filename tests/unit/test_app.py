import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.types import TP

from worker.app import broker_urls, describe_partitions
from worker.config import load_settings
from worker.kafka.faust_consumer import SluiceConsumerThread


def test_broker_urls_are_faust_urls_for_every_bootstrap_server() -> None:
    settings = load_settings(kafka_bootstrap_servers="a:9092,b:9093")
    assert broker_urls(settings) == ["kafka://a:9092", "kafka://b:9093"]


def test_assignment_description_lists_only_the_source_topic_sorted() -> None:
    assigned = {TP("events", 3), TP("events", 0), TP("app-changelog", 1)}
    assert describe_partitions(assigned, "events") == "events[0,3]"
    assert describe_partitions(set(), "events") == "events[] (none)"


async def test_preflight_checks_the_destination_of_every_configured_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sink packages' __init__ export nothing: preflight must reach their client modules
    # (it called `worker.sinks.elasticsearch.preflight`, and every worker with a sink failed).
    from worker import app as app_module
    from worker.kafka import topics
    from worker.ops import startup_checks
    from worker.sinks.elasticsearch import client as es_client
    from worker.sinks.s3 import client as s3_client

    checked: list[str] = []

    async def check(what: str, settings: object) -> None:
        checked.append(what)

    monkeypatch.setattr(startup_checks, "check_codecs", lambda: None)
    monkeypatch.setattr(startup_checks, "wait_for_broker", lambda s: check("kafka", s))
    monkeypatch.setattr(topics, "ensure_topics", lambda s: check("topics", s))
    monkeypatch.setattr(es_client, "preflight", lambda s: check("elasticsearch", s))
    monkeypatch.setattr(s3_client, "preflight", lambda s: check("s3", s))
    await app_module.preflight(load_settings(sinks=["elasticsearch", "s3"]))
    assert checked == ["kafka", "topics", "elasticsearch", "s3"]


class _PositionedConsumer:
    """An aiokafka consumer's seek calls, recorded; `committed` is what the group has."""

    def __init__(self, committed: dict[TopicPartition, int | None]) -> None:
        self.committed = committed
        self.positions: dict[TopicPartition, int | str] = {}

    async def seek_to_committed(self) -> dict[TopicPartition, int | None]:
        # aiokafka's own rule: only an offset above 0 moves the position.
        self.positions.update({tp: o for tp, o in self.committed.items() if o and o > 0})
        return self.committed

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool:
        self.positions.update({tp: "beginning" for tp in partitions})
        return True


async def test_seeking_to_committed_rewinds_partitions_never_committed_to_their_first_record(
) -> None:
    old, zero, new = (TopicPartition("events", n) for n in (0, 1, 4))
    consumer = _PositionedConsumer({old: 120, zero: 0, new: None})
    thread = SimpleNamespace(_ensure_consumer=lambda: consumer)
    committed = await SluiceConsumerThread._seek_to_committed_or_beginning(thread)  # type: ignore[arg-type]
    assert committed == {old: 120, zero: 0, new: None}  # what Faust records as read offsets
    assert consumer.positions == {old: 120, zero: 0, new: "beginning"}


def test_the_faust_and_aiokafka_internals_settlement_relies_on_are_there() -> None:
    """Contract: the pipeline takes partitions over in `App._on_partitions_assigned` (before
    Faust resumes fetching) and recovers a stuck partition with the coordinator's
    `request_rejoin`. An upgrade that renames either must fail here, not in production."""
    import inspect

    import faust

    parameters = list(inspect.signature(faust.App._on_partitions_assigned).parameters)
    assert parameters[:2] == ["self", "assigned"]
    assert callable(GroupCoordinator.request_rejoin)
    assert list(inspect.signature(GroupCoordinator.request_rejoin).parameters) == ["self"]


async def test_readiness_names_a_tripped_dead_letter_limit_and_a_failing_catalog_reader(
    tmp_path,  # noqa: ANN001
) -> None:
    from worker.app import create_app
    from worker.config import load_settings

    app = create_app(load_settings(web_port=0, sinks=["counting"], state_dir=tmp_path,
                                   dead_letter_limit_window=1))
    app.phase = "running"
    assert "dead_letters" not in await app.readiness()
    app.pipeline.dead_letter_limit.dead_lettered("decode")
    app.catalog.problem = "the catalog reader failed (RuntimeError: boom); restarting in 1s"
    problems = await app.readiness()
    assert "SLUICE_DEAD_LETTER_LIMIT_RATIO" in problems["dead_letters"]
    assert "RuntimeError: boom" in problems["catalog"]


async def test_readiness_while_starting_or_stopping_says_so_and_asks_no_sink(
    tmp_path,  # noqa: ANN001
) -> None:
    from worker.app import create_app
    from worker.config import load_settings

    # The endpoints answer before the sinks have clients: a probe then must get "starting",
    # not an AssertionError from a sink (a 500 and a traceback per probe, issue 26).
    app = create_app(load_settings(web_port=0, sinks=["elasticsearch", "s3"],
                                   state_dir=tmp_path))
    problems = await app.readiness()
    assert list(problems) == ["starting"]
    assert "starting" in problems["starting"]
    app.phase = "stopping"
    assert list(await app.readiness()) == ["stopping"]


async def test_the_consumer_thread_paces_the_empty_fetches_of_its_consumer(monkeypatch) -> None:
    from faust.transport.drivers import aiokafka as aiokafka_driver

    async def original_fetch(assignment, node_id, request) -> bool:  # noqa: ANN001
        return False

    fetcher = SimpleNamespace(_proc_fetch_request=original_fetch)

    async def start_consumer(self) -> None:  # noqa: ANN001
        self._consumer = SimpleNamespace(_fetcher=fetcher)

    monkeypatch.setattr(aiokafka_driver.AIOKafkaConsumerThread, "on_start", start_consumer)
    thread = SluiceConsumerThread.__new__(SluiceConsumerThread)
    await SluiceConsumerThread.on_start(thread)
    assert fetcher._proc_fetch_request is not original_fetch
    assert fetcher._proc_fetch_request.__qualname__.startswith("pace_empty_fetches")


class _WatchedSink:
    def __init__(self, problem: str | None = None,
                 holding: dict[tuple[str, int], str] | None = None) -> None:
        self.problem, self.held = problem, holding or {}

    async def check(self) -> str | None:
        return self.problem

    def holding(self) -> dict[tuple[str, int], str]:
        return self.held


def _watched_app(*sinks: _WatchedSink) -> SimpleNamespace:
    stuck: list = []
    pipeline = SimpleNamespace(
        sinks=list(sinks),
        stalled=lambda bound: {("events", 0): bound + 1.0, ("events", 1): bound + 2.0},
        dead_letter_limit=SimpleNamespace(tripped=False),
        stuck=lambda partition, reason: stuck.append(partition),
    )
    return SimpleNamespace(pipeline=pipeline, sluice_settings=SimpleNamespace(settle_timeout=60.0),
                           stuck=stuck)


async def test_the_settle_watchdog_recovers_a_partition_no_sink_explains() -> None:
    from worker.app import SluiceApp

    app = _watched_app(_WatchedSink())
    await SluiceApp.recover_stalled(app)  # type: ignore[arg-type]
    assert app.stuck == [("events", 0), ("events", 1)]
    down = _watched_app(_WatchedSink(problem="Elasticsearch: ConnectionError"))
    await SluiceApp.recover_stalled(down)  # type: ignore[arg-type]
    assert down.stuck == []  # a destination down explains every wait


async def test_the_settle_watchdog_leaves_records_a_sink_holds_back_on_purpose() -> None:
    # Elasticsearch answering 429 for part of a stretch shorter than its backpressure timeout:
    # the documents are held and retried; consuming them again would only add to the load.
    from worker.app import SluiceApp

    # Only the partition whose records are held: another one stuck for another reason (a lost
    # outcome) is still recovered.
    app = _watched_app(_WatchedSink(),
                       _WatchedSink(holding={("events", 0): "Elasticsearch holds back 3"}))
    await SluiceApp.recover_stalled(app)  # type: ignore[arg-type]
    assert app.stuck == [("events", 1)]


def _thread_with_partition_state(tp_state: object) -> SluiceConsumerThread:
    """A consumer thread whose aiokafka assignment holds one partition in `tp_state`."""
    assignment = SimpleNamespace(active=True, state_value=lambda tp: tp_state)
    fetcher = SimpleNamespace(_subscriptions=SimpleNamespace(
        subscription=SimpleNamespace(assignment=assignment)))
    thread = SluiceConsumerThread.__new__(SluiceConsumerThread)
    thread._consumer = SimpleNamespace(_fetcher=fetcher)  # type: ignore[assignment]
    thread.time_started = 0.0
    thread.tp_fetch_request_timeout_secs = thread.tp_stream_timeout_secs = 300.0
    app = SimpleNamespace(monitor=SimpleNamespace(stream_inbound_time={}),
                          topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    thread.consumer = SimpleNamespace(app=app)  # type: ignore[assignment]
    return thread


async def test_the_livelock_check_skips_a_partition_whose_position_is_being_reset() -> None:
    # Faust's livelock detector reads every assigned partition's position; aiokafka 0.14 asserts
    # there is one. A partition waiting for its offset reset (just assigned, seeked to its
    # beginning, or out of range after a broker restart while the broker is still away) has
    # none: the assertion crashed the worker in the broker-outage test.
    from aiokafka.consumer.subscription_state import TopicPartitionState

    resetting = TopicPartitionState(None)
    resetting.timestamp = 1_000.0  # fetched before
    resetting.highwater = 10
    assert not resetting.has_valid_position
    thread = _thread_with_partition_state(resetting)
    assert thread.verify_event_path(5.0, TP("events", 0)) is None


@pytest.mark.parametrize(("position", "reported"), [(4, True), (10, False)])
async def test_the_livelock_check_still_reads_a_partition_with_a_position(
    position: int, reported: bool
) -> None:
    # Faust's check runs for a partition that has a position, and reads it: records behind the
    # highwater mark (position 4 of 10) that no stream has taken since the start, past the
    # stream timeout, are reported; a partition consumed up to its highwater mark is not.
    from aiokafka.consumer.subscription_state import TopicPartitionState

    consuming = TopicPartitionState(None)
    consuming.timestamp, consuming.highwater = 4_000.0, 10  # fetched 1 s before `now`
    consuming._position = position
    thread = _thread_with_partition_state(consuming)
    thread.tp_stream_timeout_secs = 1.0  # 5 s since the start: past it
    thread.consumer.app.conf = SimpleNamespace(stream_processing_timeout=1.0)
    errors: list[str] = []
    thread.log = SimpleNamespace(error=lambda message, *args: errors.append(message % args))
    assert thread.verify_event_path(5.0, TP("events", 0)) is None
    idle = "Stream has not started processing TP(topic='events', partition=0) (started 5.00 s"
    assert [e.startswith(idle) for e in errors] == ([True] if reported else [])


async def test_the_livelock_check_survives_a_reset_racing_it() -> None:
    # Faust checks on the main thread while the consumer thread may reset the partition
    # between our look at its position and Faust's read of it.
    from aiokafka.consumer.subscription_state import TopicPartitionState

    class Racing(TopicPartitionState):
        looks = 0

        @property
        def has_valid_position(self) -> bool:
            Racing.looks += 1
            return Racing.looks == 1  # valid at our first look, reset right after

    racing = Racing(None)
    racing.timestamp, racing.highwater = 1_000.0, 10
    thread = _thread_with_partition_state(racing)
    assert thread.verify_event_path(5.0, TP("events", 0)) is None


async def test_a_contested_partition_makes_the_worker_rejoin_its_group(
    tmp_path,  # noqa: ANN001
) -> None:
    # The pipeline's `contested` reaches the consumer's rejoin through the app.
    from worker.app import create_app
    from worker.config import load_settings

    app = create_app(load_settings(web_port=0, sinks=["counting"], state_dir=tmp_path))
    rejoined = asyncio.Event()

    async def rejoin_group() -> None:
        rejoined.set()

    app.consumer = SimpleNamespace(rejoin_group=rejoin_group)  # type: ignore[assignment]
    app.pipeline.recover = lambda partition: None
    app.pipeline.assign([("events", 0)])
    app.pipeline.contested("s3", ("events", 0), "another worker claimed it")
    await asyncio.wait_for(rejoined.wait(), 5)
    assert app.pipeline.regroups == 1
