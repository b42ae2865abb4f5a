"""The suite's servers come from the settings (tests/support/servers.py)."""

import pytest

from tests.support.servers import on_loopback
from worker.config import load_settings


def test_the_defaults_are_the_local_stack_on_loopback() -> None:
    assert on_loopback(load_settings())
    assert on_loopback(load_settings(kafka_bootstrap_servers="localhost:29092",
                                     elasticsearch_url="http://127.0.0.1:29200"))


@pytest.mark.parametrize("overrides", [
    {"kafka_bootstrap_servers": "127.0.0.1:9092,kafka-2.internal:9092"},
    {"elasticsearch_url": "https://es.example.com:9243"},
    {"elasticsearch_cloud_id": "deployment:ZXUtd2VzdC0xLmF3cy5mb3VuZC5pbyRhYmMkZGVm"},
    {"s3_endpoint_url": "https://minio.internal:9000"},
    {"s3_endpoint_url": ""},  # AWS's own endpoints
], ids=["kafka", "elasticsearch", "elastic-cloud", "s3", "aws-s3"])
def test_any_server_elsewhere_means_servers_of_the_users_own(overrides: dict) -> None:
    assert not on_loopback(load_settings(**overrides))
