"""One Faust event per batch: the batch consumer's route through an in-memory channel to an agent.

``BatchConsumer`` (``worker.kafka.faust_batches``) can await a handler itself (``DirectRoute``), or
hand each batch to a Faust agent as one event (``AgentRoute``), so a Faust agent still does the
processing: its supervisor, its place in the app's lifecycle, its flow control. The channel
is Faust's own in-memory ``app.channel``, whose queue is a flow-control queue: it is emptied on
a rebalance, as the streams' buffers are. Its small ``maxsize`` is the backpressure: the drain
loop waits while that many batches are queued.

A batch that a seek or rewind made stale while it waited in the channel is dropped by the agent
(``BatchConsumer.is_current``): its records come again from the new position.
"""

from __future__ import annotations

from typing import Any

import faust

from worker.kafka.record_batches import BatchHandler, RecordBatch

# Batches queued between the drain loop and the agent: enough to keep the agent busy while the
# next fetch is converted, few enough that a rebalance finds little to throw away.
DEFAULT_CHANNEL_SIZE = 4


class HandlerFailed(RuntimeError):
    """The batch handler raised: the worker stops rather than skip the batch."""


class AgentRoute:
    """Deliver each batch as one event on a channel that an agent of ``app`` processes."""

    def __init__(
        self,
        app: faust.App,
        handle: BatchHandler,
        *,
        name: str = "sluice-batches",
        maxsize: int = DEFAULT_CHANNEL_SIZE,
    ) -> None:
        self.app = app
        self.handle = handle
        self.channel: faust.ChannelT = app.channel(maxsize=maxsize)
        self.agent = app.agent(self.channel, name=name)(self._process)

    async def deliver(self, batch: RecordBatch) -> None:
        """Put the batch on the channel (waits while the channel is full)."""
        await self.channel.send(value=batch)

    async def _process(self, stream: faust.StreamT) -> None:
        consumer: Any = self.app.consumer
        async for batch in stream:
            if not consumer.is_current(batch):
                continue  # a seek or rewind came after it: read again from the new position
            try:
                await self.handle(batch.tp, batch.records)
            except Exception as exc:
                # The agent's supervisor would restart the agent and the batch would be
                # skipped, never settled: the partition would stop committing. Stop instead.
                await self.app.crash(HandlerFailed(f"batch handler raised: {exc!r}"))
                raise
