"""Faust's per-message path against the batch consumer (`worker.kafka.faust_batches`), no
Sluice code.

`python -m bench.faust_path [--records N] [--loop uvloop]` produces N benchmark events to a fresh
4-partition topic on the local broker, then runs a bare Faust worker once per path, each in its
own process and consumer group, and prints records/s timed from the partition assignment to
the last record (as the issue's probe) and from the first record handled to the last:

- `per-message`: Faust's normal agent, counting and acking every event;
- `batch-direct`: the batch consumer awaiting a counting handler itself;
- `batch-agent`: the batch consumer, one Faust event per batch to a counting agent.

`python -m bench.faust_path run PATH BOOTSTRAP TOPIC N LOOP` is one such worker process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson

BOOTSTRAP = "127.0.0.1:9092"
PATHS = ("per-message", "batch-direct", "batch-agent")
PARTITIONS = 4


def _bare_app(path: str, bootstrap: str, topic: str, expected: int, done: Any) -> Any:
    import faust
    from faust.transport.drivers import aiokafka as aiokafka_driver

    from worker.kafka.faust_batch_agent import AgentRoute
    from worker.kafka.faust_batches import BatchConsumer
    from worker.kafka.record_batches import DirectRoute

    class BatchTransport(aiokafka_driver.Transport):
        Consumer = BatchConsumer

    class BareApp(faust.App):
        def _new_transport(self) -> Any:
            if path == "per-message":
                return super()._new_transport()
            return BatchTransport(self.conf.broker_consumer, self)

    app = BareApp(f"faust-path-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}",
                  store="memory://", web_enabled=False, topic_allow_declare=False,
                  consumer_auto_offset_reset="earliest")
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    state = {"count": 0, "start": 0.0, "first": 0.0, "settled": {}}

    def counted(n: int) -> None:
        if not state["first"]:
            state["first"] = time.monotonic()
        state["count"] += n
        if state["count"] >= expected:
            done(state)

    if path == "per-message":
        @app.agent(source)
        async def count(stream: Any) -> None:
            async for _ in stream:  # Faust acks each event as the loop moves on
                counted(1)
    else:
        async def handle(tp: Any, records: list) -> None:
            state["settled"][tp] = records[-1].position.offset + 1
            counted(len(records))

        route = (DirectRoute(handle) if path == "batch-direct" else AgentRoute(app, handle))
        app.topics.add(source)  # subscribe: no agent reads the topic itself
        consumer: Any = app.consumer
        consumer.attach([topic], route, state["settled"].get)

    @app.on_partitions_assigned.connect
    async def started(sender: Any, assigned: set, **_: Any) -> None:
        if assigned and not state["start"]:
            state["start"] = time.monotonic()

    return app


def run_one(path: str, bootstrap: str, topic: str, expected: int, loop_name: str) -> None:
    """One bare Faust worker: consume `expected` records, print the figures, stop."""
    import faust
    import mode.loop

    if loop_name != "asyncio":
        mode.loop.use(loop_name)  # what `faust worker -L uvloop` does
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def done(state: dict) -> None:
        if state.get("end"):
            return
        state["end"] = time.monotonic()
        # From the assignment (as the probe), and from the first record handled (the
        # steady rate, without Faust's start-up after the assignment).
        seconds = state["end"] - state["start"]
        steady = state["end"] - state["first"]
        print(orjson.dumps({"path": path, "loop": type(loop).__module__, "records": state["count"],
                            "seconds": round(seconds, 3),
                            "records_per_s": round(state["count"] / seconds),
                            "records_per_s_from_first": round(state["count"] / steady)}).decode(),
              flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    app = _bare_app(path, bootstrap, topic, expected, done)
    faust.Worker(app, loop=loop, loglevel=os.environ.get("PROBE_LOG", "WARNING"), quiet=True,
                 redirect_stdouts=False).execute_from_commandline()


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from bench.events import bench_events

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key)
                   for key, value in bench_events(count)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def main(argv: list[str]) -> None:
    """Produce once, then time every path in its own worker process."""
    if argv[:1] == ["run"]:
        path, bootstrap, topic, expected, loop_name = argv[1:6]
        run_one(path, bootstrap, topic, int(expected), loop_name)
        return
    records = int(argv[argv.index("--records") + 1]) if "--records" in argv else 100_000
    loop_name = argv[argv.index("--loop") + 1] if "--loop" in argv else "asyncio"
    paths = argv[argv.index("--paths") + 1].split(",") if "--paths" in argv else PATHS
    topic = f"bench-faust-path-{uuid.uuid4().hex[:8]}"
    asyncio.run(_produce(BOOTSTRAP, topic, records))
    for path in paths:
        out = subprocess.run(
            [sys.executable, "-m", "bench.faust_path", "run", path, BOOTSTRAP, topic,
             str(records), loop_name],
            capture_output=True, text=True, timeout=600)
        # Faust's worker writes terminal control codes before the line: take the JSON part.
        lines = [line[line.index("{"):] for line in out.stdout.splitlines() if '{"path"' in line]
        print(lines[-1] if lines else f"{path}: no result (exit {out.returncode})\n"
              f"{out.stderr[-3000:]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
