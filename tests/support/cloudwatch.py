"""CloudWatch Logs subscription records as AWS builds them, and Firehose requests carrying them.

``data/cloudwatch_logs_example.json`` is AWS's documented example of a subscription record,
decompressed (CloudWatch Logs User Guide, "Validate the flow of log events"): the tests gzip it,
as CloudWatch Logs does, and build others of the same structure around API Gateway access logs.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from pathlib import Path
from typing import Any

DOCUMENTED_EXAMPLE = Path(__file__).parent / "data" / "cloudwatch_logs_example.json"


def documented_example() -> dict[str, Any]:
    """AWS's example subscription record (three CloudTrail log events), decompressed."""
    return json.loads(DOCUMENTED_EXAMPLE.read_text())


def subscription_record(messages: list[str], log_group: str = "API-Gateway-Access-Logs/prod",
                        log_stream: str = "stream-1", first_id: int = 0,
                        timestamp_ms: int = 1_795_000_000_000) -> dict[str, Any]:
    """A DATA_MESSAGE with one log event per message, shaped like the documented example."""
    base = 31953106606966983378809025079804211143289615424290000 + first_id
    return {"owner": "111111111111", "logGroup": log_group, "logStream": log_stream,
            "subscriptionFilters": ["to-firehose"], "messageType": "DATA_MESSAGE",
            "logEvents": [{"id": str(base + n), "timestamp": timestamp_ms + n, "message": message}
                          for n, message in enumerate(messages)]}


def control_message() -> dict[str, Any]:
    """What CloudWatch Logs sends to check a destination when a subscription is created."""
    return {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
            "logStream": "", "subscriptionFilters": [],
            "logEvents": [{"id": "", "timestamp": 1_795_000_000_000,
                           "message": "CWL CONTROL MESSAGE: Checking health of destination "
                                      "Firehose."}]}


def gzipped(record: dict[str, Any]) -> bytes:
    """The record as CloudWatch Logs delivers it: gzip-compressed JSON."""
    return gzip.compress(json.dumps(record).encode())


def firehose_request(records: list[bytes], request_id: str | None = None) -> bytes:
    """A Firehose HTTP-endpoint request body whose records' data are `records` (base64)."""
    return json.dumps({"requestId": request_id or str(uuid.uuid4()), "timestamp": 1795000000000,
                       "records": [{"data": base64.b64encode(data).decode()}
                                   for data in records]}).encode()
