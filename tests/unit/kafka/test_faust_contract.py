"""The Faust and aiokafka internals that ``worker.kafka.faust_batches`` relies on, pinned.

The batch consumer replaces Faust's per-message drain loop and feeds Faust's commit with its own
offsets. It depends on names, signatures and behaviour that are not public API; an upgrade that
changes any of them must fail here, not in production. Each test names what it pins and why.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from typing import Any

import faust
import pytest
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.structs import ConsumerRecord
from faust.sensors.monitor import Monitor
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode.services import ServiceTask

from worker.kafka.faust_batches import BatchConsumer


def params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def source(function: Any) -> str:
    return inspect.getsource(function)


def test_versions_are_the_pinned_ones() -> None:
    # pyproject.toml pins faust-streaming exactly; the batch consumer was checked at this version.
    assert version("faust-streaming") == "0.15.3"
    assert version("aiokafka").startswith("0.14.")


def test_the_fetcher_service_runs_the_consumers_drain_loop() -> None:
    # BatchConsumer overrides _drain_messages(fetcher); Faust's Fetcher must still call it.
    assert "consumer._drain_messages(self)" in source(faust_consumer.Fetcher._fetcher.fun)
    assert params(faust_consumer.Consumer._drain_messages) == ["self", "fetcher"]
    assert faust_consumer.CONSUMER_FETCHING == "FETCHING"


def test_wait_next_records_returns_records_and_active_partitions() -> None:
    # The drain loop takes whole fetches from here: (RecordMap | None, set[TP] | None).
    wait = faust_consumer.Consumer._wait_next_records
    assert params(wait) == ["self", "timeout"]
    text = source(wait)
    assert "await self.wait(self.can_resume_flow)" in text  # waits while the flow is stopped
    assert "return records, active_partitions" in text
    # The consumer thread fetches with aiokafka and returns nothing while the flow is stopped.
    fetch = source(aiokafka_driver.AIOKafkaConsumerThread._fetch_records)
    assert "if not self.consumer.flow_active:" in fetch
    assert "fetcher.fetched_records(" in fetch


def test_getmany_rules_the_drain_loop_reproduces() -> None:
    # Faust's per-message rules that BatchConsumer._deliver keeps: skip inactive partitions,
    # stop on a generation change or a stopped flow, seek back when fetched while stopped.
    text = source(faust_consumer.Consumer.getmany)
    assert "tp in active_partitions" in text and "tp in self._buffered_partitions" in text
    assert "new_generation_id != generation_id" in text
    assert "if not self.flow_active:" in text
    assert "await self.perform_seek()" in text
    drain = source(faust_consumer.Consumer._drain_messages)
    # Read-offset drop rule, and the wait on the callback raced with suspend_flow.
    assert "if r_offset is None or offset >= r_offset:" in drain
    assert "callback(message), self.suspend_flow.wait()" in drain
    assert "except self.consumer_stopped_errors:" in drain


def test_seek_and_perform_seek_set_the_read_offsets() -> None:
    # rewind() relies on seek_wait + _read_offset; perform_seek is what a rebalance calls.
    assert "read_offset.update(" in source(faust_consumer.Consumer.perform_seek)
    assert "self._read_offset[ensure_TP(partition)] = offset if offset else None" in source(
        faust_consumer.Consumer.seek)
    assert params(faust_consumer.ThreadDelegateConsumer.seek_wait) == ["self", "partitions"]
    assert "consumer.seek(tp, offset)" in source(aiokafka_driver.AIOKafkaConsumerThread._seek_wait)


def test_commit_picks_offsets_through_the_overridden_methods() -> None:
    # BatchConsumer overrides _filter_tps_with_pending_acks and _new_offset; Faust's commit
    # must still go force_commit -> _commit_tps -> _filter_committable_offsets -> _new_offset.
    assert "self._filter_tps_with_pending_acks(topics)" in source(
        faust_consumer.Consumer.force_commit)
    assert "self._filter_committable_offsets(tps)" in source(faust_consumer.Consumer._commit_tps)
    text = source(faust_consumer.Consumer._filter_committable_offsets)
    assert "self._new_offset(tp)" in text and "self._should_commit(tp, offset)" in text
    assert params(faust_consumer.Consumer._new_offset) == ["self", "tp"]
    assert params(faust_consumer.Consumer._filter_tps_with_pending_acks) == ["self", "topics"]
    assert "await self.commit()" in source(faust_consumer.Consumer._commit_handler.fun)
    # Commits of partitions no longer assigned are discarded, not sent.
    assert "if tp in assignment:" in source(faust_consumer.Consumer._commit_offsets)


def test_should_commit_only_moves_forward() -> None:
    consumer = _consumer()
    tp = TP("t", 0)
    assert consumer._should_commit(tp, 5)  # nothing committed yet
    consumer._committed_offset[tp] = 5
    assert not consumer._should_commit(tp, 5)
    assert not consumer._should_commit(tp, 4)
    assert consumer._should_commit(tp, 6)


def test_consumer_state_the_batch_consumer_reads() -> None:
    consumer = _consumer()
    for name in ("_read_offset", "_committed_offset", "_buffered_partitions", "_acked",
                 "suspend_flow", "can_resume_flow", "flow_active", "_stopped", "diag",
                 "callback", "transport", "consumer_stopped_errors"):
        assert hasattr(consumer, name), name
    assert consumer._read_offset[TP("t", 9)] is None  # a defaultdict of None
    for name in ("_get_active_partitions", "_set_active_tps", "pause_partitions", "wait_first",
                 "stop_flow", "resume_flow", "_to_message", "_add_gap", "highwater",
                 "assignment", "sleep"):
        assert callable(getattr(consumer, name)), name
    consumer.stop_flow()
    assert not consumer.flow_active and consumer.suspend_flow.is_set()
    consumer.resume_flow()
    assert consumer.flow_active and not consumer.suspend_flow.is_set()


def test_aiokafka_consumer_record_fields() -> None:
    # source_records reads these fields straight from aiokafka's records.
    fields = params(ConsumerRecord)
    for name in ("topic", "partition", "offset", "timestamp", "key", "value", "headers"):
        assert name in fields


def test_aiokafka_drops_fetched_records_after_a_seek() -> None:
    # A rewind relies on aiokafka discarding records fetched for the old position.
    assert "position != self._partition_records.next_fetch_offset" in inspect.getsource(
        __import__("aiokafka.consumer.fetcher", fromlist=["x"]).FetchResult.check_assignment)
    assert "self.next_fetch_offset" in inspect.getsource(PartitionRecords.__init__)


def test_monitor_fields_the_batch_consumer_feeds() -> None:
    # The livelock detector warns about partitions whose stream_inbound_time does not move.
    assert "monitor.stream_inbound_time.get(tp)" in source(
        aiokafka_driver.AIOKafkaConsumerThread.verify_event_path)
    assert params(Monitor.track_tp_end_offset) == ["self", "tp", "offset"]
    assert "stream_inbound_time" in Monitor.__annotations__


def test_transport_creates_its_consumer_class() -> None:
    # The app chooses BatchConsumer through Transport.Consumer.
    assert "self.Consumer(" in source(faust.transport.base.Transport.create_consumer)
    assert isinstance(_consumer(), BatchConsumer)


async def test_channel_carries_a_python_object_unchanged() -> None:
    # AgentRoute sends the batch object through app.channel: no serialization in between.
    app = _app()
    app.flow_control.resume()  # a running worker's flow; suspended until then
    channel = app.channel(maxsize=2)
    subscriber = channel.clone(is_iterator=True)
    payload = object()
    await channel.send(value=payload)
    event = await asyncio.wait_for(subscriber.get(), 1)
    assert event.value is payload


def _app() -> faust.App:
    class Transport(aiokafka_driver.Transport):
        Consumer = BatchConsumer

    class App(faust.App):
        def _new_transport(self) -> Any:
            return Transport(self.conf.broker_consumer, self)

    return App(f"contract-{id(Transport)}", broker="kafka://127.0.0.1:1", store="memory://",
               web_enabled=False)


def _consumer() -> Any:
    return _app().consumer


@pytest.mark.parametrize("name", ["_drain_messages", "_new_offset", "_filter_tps_with_pending_acks",
                                  "perform_seek"])
def test_batch_consumer_overrides_exist_in_faust(name: str) -> None:
    # Every method BatchConsumer overrides must still exist on Faust's consumer.
    assert hasattr(aiokafka_driver.Consumer, name)
    assert getattr(BatchConsumer, name) is not getattr(aiokafka_driver.Consumer, name)


def test_the_commit_loop_is_a_service_task_replaced_by_name() -> None:
    # BatchConsumer replaces Faust's commit timer by defining a task of the same name: mode
    # starts a service's tasks by attribute name, so only the override runs.
    base_tasks = faust_consumer.Consumer._tasks[faust_consumer.Consumer._get_class_id()]
    assert "_commit_handler" in base_tasks
    assert isinstance(faust_consumer.Consumer.__dict__["_commit_handler"], ServiceTask)
    ours = BatchConsumer._tasks[BatchConsumer._get_class_id()]
    assert "_commit_handler" in ours
    assert BatchConsumer._commit_handler is BatchConsumer.__dict__["_commit_handler"]


def test_the_fetch_loop_calls_the_fetch_request_through_the_instance() -> None:
    # worker.kafka.fetch_pacing replaces _proc_fetch_request on the fetcher instance; aiokafka's
    # fetch loop must look it up there per request, and it must return whether records arrived.
    from aiokafka.consumer.consumer import AIOKafkaConsumer
    from aiokafka.consumer.fetcher import Fetcher

    assert params(Fetcher._proc_fetch_request) == ["self", "assignment", "node_id", "request"]
    assert "self._proc_fetch_request(assignment, node_id, request)" in source(
        Fetcher._fetch_requests_routine)
    assert "return needs_wakeup" in source(Fetcher._proc_fetch_request)
    # Cancelled fetch tasks answer False: the fetcher's close() awaits them without a guard.
    assert "except asyncio.CancelledError:" in source(Fetcher._proc_fetch_request)
    assert "x.cancel()\n            await x" in source(Fetcher.close)
    # One fetch per broker at a time: a paced fetch holds its broker's slot.
    assert "elif node_id in self._in_flight:" in source(Fetcher._get_actions_per_node)
    # The consumer thread finds the fetcher on the started aiokafka consumer.
    assert "self._fetcher = Fetcher(" in source(AIOKafkaConsumer.start)


def test_the_livelock_check_reads_a_position_aiokafka_asserts() -> None:
    # worker.kafka.faust_consumer.SluiceConsumerThread.verify_event_path skips partitions without a
    # position because Faust reads it unguarded and aiokafka asserts it exists. If either
    # changes, the override may go (or must follow the new path to the partition's state).
    from aiokafka.consumer.subscription_state import TopicPartitionState

    faust_check = source(aiokafka_driver.AIOKafkaConsumerThread.verify_event_path)
    assert "committed_offset = tp_state.position" in faust_check
    assert "_fetcher._subscriptions.subscription.assignment.state_value(" in faust_check
    assert "assert self._position is not None" in source(TopicPartitionState.position.fget)
    assert "return self._position is not None" in source(
        TopicPartitionState.has_valid_position.fget)
