"""The main job on the local stack, end to end: what `make demo` (`sluice demo`) runs.

Starts the local stack, creates the topics, starts a `sluice worker` process, produces sample
events in every input form, waits until the worker has committed past all of them, and prints
where they landed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer

from worker.config import Settings
from worker.group_offsets import PartitionProgress, group_progress
from worker.samples import SampleTraffic
from worker.stack import LocalStack
from worker.topics import ensure_topics

Say = Callable[[str], None]


class DemoError(Exception):
    """The demo could not finish; the message says at which step and where the logs are."""


async def produce_samples(settings: Settings, count: int) -> Counter[str]:
    """Produce `count` sample records to the source topic; return how many of each form."""
    forms: Counter[str] = Counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_server_list, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        sends = []
        for record in SampleTraffic().records(count):
            sends.append(
                await producer.send(settings.source_topic, value=record.value, key=record.key)
            )
            forms[record.form] += 1
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return forms


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A `sluice worker` process with the demo's settings, logging to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment.update(settings.as_environment())
    with log_path.open("ab") as log_file:
        return subprocess.Popen(  # noqa: S603 (fixed argv)
            [sys.executable, "-m", "worker", "worker"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
        )


async def wait_until_committed(
    settings: Settings, timeout: float, worker: subprocess.Popen[bytes]
) -> list[PartitionProgress]:
    """Poll the group's committed offsets until no partition lags, the worker dies, or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        progress = await group_progress(settings, settings.source_topic)
        if progress and all(p.lag == 0 for p in progress):
            return progress
        if worker.poll() is not None:
            raise DemoError(f"the worker exited with code {worker.returncode} before catching up")
        if time.monotonic() > deadline:
            lag = sum(p.lag for p in progress)
            raise DemoError(f"the worker still lags by {lag} records after {timeout:.0f}s")
        await asyncio.sleep(1.0)


def stop_worker(worker: subprocess.Popen[bytes], grace_seconds: float = 30.0) -> None:
    """SIGTERM (graceful: flush and commit), then SIGKILL if it does not leave in time."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def run_demo(settings: Settings, event_count: int, say: Say = print) -> None:
    """Run the whole demo; raise DemoError with the step that failed."""
    stack = LocalStack(settings)
    say("== 1. local stack")
    stack.up(log=lambda line: say(f"   {line}"))

    say("== 2. topics")
    created = asyncio.run(ensure_topics(settings))
    say(f"   created: {', '.join(created) or 'none (all exist)'}")

    log_path = stack.root.parent / "demo" / "worker.log"
    say(f"== 3. worker (log: {log_path})")
    worker = start_worker(settings, log_path)
    try:
        say(f"== 4. producing {event_count} sample records to {settings.source_topic}")
        forms = asyncio.run(produce_samples(settings, event_count))
        say("   " + ", ".join(f"{form}={n}" for form, n in sorted(forms.items())))

        say("== 5. waiting for the worker to consume and commit them")
        progress = asyncio.run(wait_until_committed(settings, timeout=120.0, worker=worker))
    except DemoError as error:
        raise DemoError(f"{error}; see {log_path}") from error
    finally:
        stop_worker(worker)

    say("== 6. where they landed")
    say(f"   topic {settings.source_topic}, consumer group {settings.app_id}:")
    for partition in progress:
        say(
            f"     partition {partition.partition}: end offset {partition.end_offset}, "
            f"committed {partition.committed}, lag {partition.lag}"
        )
    say(f"   worker log: {log_path}")
    say("   the stack keeps running; stop it with `sluice stack down`")
