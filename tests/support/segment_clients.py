"""Segment's own libraries, sending every call type to a tracking API, and what they sent.

Python: segment-analytics-python (the `dev` extra); Node: @segment/analytics-node run by
``segment_node_client.cjs`` from ``tests/node_modules`` (``make test-clients``). Each returns
the events as the library reported sending them (its own ``messageId``s), so a test can look for
exactly those in the sinks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT

NODE_CLIENT = Path(__file__).with_name("segment_node_client.cjs")
NODE_MODULES = REPO_ROOT / "tests" / "node_modules" / "@segment" / "analytics-node"


@dataclass(frozen=True)
class Sent:
    """One event a library sent."""

    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None


def send_with_python(host: str, write_key: str, gzip: bool, run: str) -> list[Sent]:
    """Every call type through segment-analytics-python; fails on any error it reports."""
    from segment.analytics import Client

    errors: list[str] = []
    client = Client(write_key, host=host, gzip=gzip, upload_size=4, upload_interval=0.2,
                    max_retries=3, on_error=lambda error, batch: errors.append(str(error)))
    results = []
    for n in range(3):
        user, anonymous = f"{run}-user-{n}", f"{run}-anon-{n}"
        results += [
            client.identify(user, {"plan": "pro", "n": n, "big": 12345678901234}),
            client.track(user, "Order Completed", {"revenue": 9.5 + n}),
            client.page(anonymous_id=anonymous, name="Pricing", properties={"n": n}),
            client.screen(user, name="Home"),
            client.group(user, f"{run}-org", {"employees": 12}),
            client.alias(anonymous, user),
        ]
    client.flush()
    client.join()
    assert not errors, errors
    assert all(ok for ok, _ in results)
    return [Sent(message["type"], message["messageId"], message.get("userId"),
                 message.get("anonymousId")) for _, message in results]


def send_with_node(host: str, write_key: str, gzip: bool, run: str) -> list[Sent]:
    """Every call type through @segment/analytics-node; fails on any error it reports."""
    node = shutil.which("node")
    assert node and NODE_MODULES.exists(), "run `make test-clients` (node and tests/node_modules)"
    result = subprocess.run([node, str(NODE_CLIENT), host, write_key, "1" if gzip else "0", run],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["errors"], report["errors"]
    return [Sent(event["type"], event["messageId"], event.get("userId"),
                 event.get("anonymousId")) for event in report["sent"]]
