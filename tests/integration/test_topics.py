import pytest

from worker.config import Settings
from worker.kafka.topics import ensure_topics, partition_counts

pytestmark = pytest.mark.integration


async def test_missing_topics_are_created_with_the_configured_partitions(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"topic_partitions": 3})
    created = await ensure_topics(settings)
    assert set(created) == {
        settings.source_topic,
        settings.dead_letter_topic_name,
        settings.catalog_topic,
    }
    assert set((await partition_counts(settings, created)).values()) == {3}


async def test_ensure_topics_twice_creates_nothing_the_second_time(settings: Settings) -> None:
    await ensure_topics(settings)
    assert await ensure_topics(settings) == []
