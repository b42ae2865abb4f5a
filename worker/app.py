"""The Faust application: broker connection, topics, and the hooks that say what the worker does."""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import TP

from worker.config import Settings

log = logging.getLogger(__name__)


def broker_urls(settings: Settings) -> list[str]:
    """Faust's broker URLs (`kafka://host:port`) from the bootstrap servers setting."""
    return [f"kafka://{server}" for server in settings.bootstrap_server_list]


def create_app(settings: Settings) -> faust.App:
    """A configured Faust app. Topics must already exist (see `worker.topics.ensure_topics`)."""
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings),
        # Tables are rebuilt from their changelog topics at start; nothing local needs to persist.
        store="memory://",
        datadir=str(settings.state_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # A new consumer group starts at the oldest record: nothing produced before the first
        # worker started is skipped.
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web_port != 0,
        web_port=settings.web_port or 6066,
        web_bind="0.0.0.0",
        # Sluice never declares topics through a subscription: they are created up front.
        topic_allow_declare=False,
    )

    @app.on_partitions_assigned.connect
    async def log_assignment(sender: Any, assigned: set[TP], **_: Any) -> None:
        log.info("partitions assigned: %s", describe_partitions(assigned, settings.source_topic))

    @app.on_partitions_revoked.connect
    async def log_revocation(sender: Any, revoked: set[TP], **_: Any) -> None:
        log.info("partitions revoked: %s", describe_partitions(revoked, settings.source_topic))

    return app


def describe_partitions(partitions: set[TP], topic: str) -> str:
    """`sluice-events[0,2,3]` for the partitions of one topic (others are Faust's own)."""
    numbers = sorted(tp.partition for tp in partitions if tp.topic == topic)
    return f"{topic}[{','.join(map(str, numbers))}]" if numbers else f"{topic}[] (none)"
