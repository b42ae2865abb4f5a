from __future__ import annotations

import pytest

from worker.local.stack import LocalStack

pytestmark = pytest.mark.integration


def test_every_service_of_the_stack_answers(stack: LocalStack | None) -> None:
    if stack is None:
        pytest.skip("the settings point at servers elsewhere: no local stack to check")
    report = stack.status()
    names = [server.name for server in report]
    # PostgreSQL is part of the stack while the Iceberg catalog is a PostgreSQL on loopback
    # (the default); the other two always are.
    assert names in (["noida", "seaweedfs"], ["noida", "seaweedfs", "postgres"])
    assert all(server.down_services == [] for server in report)
    services = {name for server in report for name in server.ready_services}
    assert services == {"Kafka broker", "Elasticsearch API", "S3 (SeaweedFS)"} | (
        {"PostgreSQL (Iceberg catalog)"} if "postgres" in names else set())
