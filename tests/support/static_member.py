"""A bare aiokafka group member with a static ``group.instance.id``, run as its own process so
that a test can SIGKILL it: it prints its assignment (a JSON list of partitions) each time it
changes, and asks for a rejoin on SIGUSR1, as a Sluice worker does on an ownership conflict.

    python -m tests.support.static_member BOOTSTRAP GROUP TOPIC INSTANCE_ID
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from aiokafka import AIOKafkaConsumer


async def main(bootstrap: str, group: str, topic: str, instance: str) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, group_instance_id=instance,
        session_timeout_ms=10_000, heartbeat_interval_ms=1_000, enable_auto_commit=False)
    await consumer.start()
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1, consumer._coordinator.request_rejoin)
    printed = None
    while True:
        owned = sorted(tp.partition for tp in consumer.assignment())
        if owned != printed:
            print(json.dumps(owned), flush=True)
            printed = owned
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
