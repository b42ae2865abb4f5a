"""What the benchmark reads while a runner works: committed offsets, peak memory, metrics."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition


@dataclass
class PeakMemory:
    """Peak resident memory (VmHWM) of processes, sampled while they live."""

    peaks_kib: dict[int, int] = field(default_factory=dict)

    def sample(self, pids: list[int]) -> None:
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if match:
                self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), int(match.group(1)))

    @property
    def max_mib(self) -> float:
        """The largest single process's peak (workers are sized one by one)."""
        return max(self.peaks_kib.values(), default=0) / 1024


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """The topic's end offset per partition (the benchmark produces before it measures)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        await consumer.stop()


async def count_records(bootstrap: str, topic: str) -> int:
    """Records of the topic as a read_committed reader sees them (the worker reads so):
    aborted transactions left out, and no transaction marker counted, as offsets would."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", max_poll_records=10_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(
            await consumer._client._wait_on_metadata(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            count += sum(len(batch) for batch in
                         (await consumer.getmany(timeout_ms=1000)).values())
        return count
    finally:
        await consumer.stop()


class CommitWatch:
    """Polls a group's committed offsets until they reach the topic's end offsets."""

    def __init__(self, bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> None:
        self.group = group
        self.ends = ends
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> CommitWatch:
        await self.admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.admin.close()

    async def remaining(self) -> int:
        """Records not yet committed by the group."""
        committed = await self.admin.list_consumer_group_offsets(
            self.group, partitions=list(self.ends))
        done = {tp: max(meta.offset, 0) for tp, meta in committed.items()}
        return sum(end - done.get(tp, 0) for tp, end in self.ends.items())


async def scrape(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """A worker's Prometheus metrics as {name{labels}: value} (an empty dict if it is down)."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics",
                               timeout=aiohttp.ClientTimeout(total=2)) as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def wait_until(condition, timeout: float, interval: float = 0.05) -> float:  # noqa: ANN001
    """Await `condition()` until it is true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return time.monotonic()
        await asyncio.sleep(interval)
    raise TimeoutError(f"not done within {timeout:.0f}s")
