from __future__ import annotations

import pytest

from worker.local.stack import LocalStack

pytestmark = pytest.mark.integration


def test_every_service_of_the_stack_answers(stack: LocalStack | None) -> None:
    if stack is None:
        pytest.skip("the settings point at servers elsewhere: no local stack to check")
    report = stack.status()
    assert [server.name for server in report] == ["noida", "seaweedfs"]
    assert all(server.down_services == [] for server in report)
    services = {name for server in report for name in server.ready_services}
    assert services == {"Kafka broker", "Elasticsearch API", "S3 (SeaweedFS)"}
