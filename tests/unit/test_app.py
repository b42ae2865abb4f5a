from faust.types import TP

from worker.app import broker_urls, describe_partitions
from worker.config import load_settings


def test_broker_urls_are_faust_urls_for_every_bootstrap_server() -> None:
    settings = load_settings(kafka_bootstrap_servers="a:9092,b:9093")
    assert broker_urls(settings) == ["kafka://a:9092", "kafka://b:9093"]


def test_assignment_description_lists_only_the_source_topic_sorted() -> None:
    assigned = {TP("events", 3), TP("events", 0), TP("app-changelog", 1)}
    assert describe_partitions(assigned, "events") == "events[0,3]"
    assert describe_partitions(set(), "events") == "events[] (none)"
