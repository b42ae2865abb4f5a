"""The topics Sluice needs, and creating them before any worker starts.

Topics are created with the admin client, with their partition counts, *before* a worker
subscribes: a topic auto-created by a subscription gets the broker's default of one partition,
and Faust then fails with ``PartitionsMismatch``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.config import Settings
from worker.kafka.connection import client_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic Sluice uses, with the partition count and configs it is created with."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


def required_topics(settings: Settings) -> list[TopicSpec]:
    """Source, dead-letter and catalog topics as the settings describe them."""
    replication = settings.topic_replication_factor
    return [
        TopicSpec(settings.source_topic, settings.topic_partitions, replication),
        TopicSpec(
            settings.dead_letter_topic_name,
            settings.topic_partitions,
            replication,
            {"retention.ms": str(int(settings.dead_letter_retention_days * 86_400_000))},
        ),
        # The catalog is a table keyed by API key id: compaction keeps the latest value per key
        # and lets a tombstone (null value) delete one.
        TopicSpec(
            settings.catalog_topic,
            settings.topic_partitions,
            replication,
            {"cleanup.policy": "compact"},
        ),
    ]


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the topics that are missing; return the names created. Existing ones are kept."""
    specs = specs if specs is not None else required_topics(settings)
    admin = AIOKafkaAdminClient(
        **client_options(settings), client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        await _warn_about_partition_counts(admin, [s for s in specs if s.name in existing])
        created: list[str] = []
        for spec in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=spec.replication_factor,
                            topic_configs=spec.configs,
                        )
                    ]
                )
                created.append(spec.name)
                log.info("created topic %s with %d partitions", spec.name, spec.partitions)
            except TopicAlreadyExistsError:
                # Another worker created it between our listing and our request: fine.
                pass
        return created
    finally:
        await admin.close()


async def _warn_about_partition_counts(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    """An existing topic keeps its partitions; say so when they differ from the settings."""
    if not specs:
        return
    counts = await _describe_partition_counts(admin, [spec.name for spec in specs])
    for spec in specs:
        if counts.get(spec.name, spec.partitions) != spec.partitions:
            log.warning(
                "topic %s exists with %d partitions, not the %d configured; it is used as it is",
                spec.name, counts[spec.name], spec.partitions,
            )


async def _describe_partition_counts(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, int]:
    # Only for topics known to exist: a metadata request for an unknown topic may auto-create it
    # (with one partition) on brokers that allow auto-creation.
    described = await admin.describe_topics(topics)
    return {entry["topic"]: len(entry["partitions"]) for entry in described}


async def partition_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Partition count of each of the given, existing topics."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return await _describe_partition_counts(admin, topics)
    finally:
        await admin.close()


class ScaleError(Exception):
    """The source topic cannot be scaled as asked; the message says why."""


async def scale_source_topic(settings: Settings, partitions: int) -> tuple[int, int]:
    """Grow the source topic to `partitions`; return (before, after). Never shrinks.

    Sluice keeps no Faust table or repartition topic tied to the source topic's partition
    count, so nothing else has to grow with it; running workers pick the new partitions up at
    their next metadata refresh (SLUICE_METADATA_REFRESH_INTERVAL) and rebalance.
    """
    topic = settings.source_topic
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            raise ScaleError(f"topic {topic} does not exist: create it with `sluice topics create`")
        current = (await _describe_partition_counts(admin, [topic]))[topic]
        if partitions < current:
            raise ScaleError(
                f"topic {topic} has {current} partitions; Kafka cannot remove partitions, so it "
                f"cannot go down to {partitions}. To use fewer, create a new topic and move "
                "producers to it."
            )
        if partitions == current:
            return current, current
        await admin.create_partitions({topic: NewPartitions(total_count=partitions)})
        log.info("topic %s grown from %d to %d partitions", topic, current, partitions)
        return current, partitions
    finally:
        await admin.close()


async def topic_configs(settings: Settings, topics: list[str]) -> dict[str, dict[str, str]]:
    """The configs that matter to Sluice (cleanup policy, retention) of existing topics."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
        result: dict[str, dict[str, str]] = {topic: {} for topic in topics}
        for response in responses:
            for _code, _message, _type, name, entries in response.resources:
                result[name] = {
                    entry[0]: entry[1] for entry in entries
                    if entry[0] in ("cleanup.policy", "retention.ms") and entry[1] is not None
                }
        return result
    except Exception as error:  # noqa: BLE001 (configs are informative; brokers may refuse)
        log.info("topic configs unavailable: %s", error)
        return {topic: {} for topic in topics}
    finally:
        await admin.close()
