"""CloudWatch Logs subscription records: gzip JSON that carries a log group's events.

A subscription filter (to Firehose, Kinesis, or Lambda and on to Kafka) delivers each batch of
log events as one gzip-compressed JSON object (AWS: "CloudWatch Logs subscription filters",
*Examples*, the data format)::

    {"messageType": "DATA_MESSAGE", "owner": "123456789012",
     "logGroup": "API-Gateway-Execution-Logs_abc/prod", "logStream": "…",
     "subscriptionFilters": ["…"],
     "logEvents": [{"id": "3195…", "timestamp": 1432826855000, "message": "…"}, …]}

``CONTROL_MESSAGE`` records (sent when the subscription is set up, to check the destination)
carry no log events: they are acknowledged and dropped. A record that does not gunzip, is not
JSON, or is not of this shape fails **whole**: the dead-letter topic gets its bytes intact
(never cut at newline bytes into pieces that cannot be put back together).

Reading the messages is ``worker.events.decoding``'s (an API Gateway access log as ever, any
other text a raw log event); this module only opens the record.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.events import json_codec
from worker.events.errors import DecodeError, RecordTooLarge

GZIP_MAGIC = b"\x1f\x8b"
DATA_MESSAGE, CONTROL_MESSAGE = "DATA_MESSAGE", "CONTROL_MESSAGE"
# A subscription record is at most about 1 MB gzip (the Kinesis/Firehose record limit); its log
# events gunzip to some ten times that at most in practice. The bound keeps a gzip bomb from
# taking the worker's memory: past it the record is dead-lettered whole.
EXPANSION_LIMIT = 16


class InvalidCloudWatchRecord(DecodeError):
    """A gzip record that is not a CloudWatch Logs subscription record (or not gzip at all)."""


@dataclass(slots=True)
class Subscription:
    """An opened subscription record."""

    message_type: str
    log_group: str | None = None
    log_stream: str | None = None
    owner: str | None = None
    log_events: list[dict[str, Any]] = field(default_factory=list)


def is_gzip(value: bytes) -> bool:
    """Whether the bytes start like a gzip member (no JSON or base64 text starts so)."""
    return value[:2] == GZIP_MAGIC


def gunzip(value: bytes, limit: int) -> bytes:
    """The decompressed bytes (every member), refused past `limit` bytes."""
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    data = value
    try:
        while data:
            out += inflater.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise RecordTooLarge(f"the gzip record expands to more than {limit} bytes")
            if inflater.unconsumed_tail:
                data = inflater.unconsumed_tail
                continue
            data = inflater.unused_data
            if data:  # another gzip member follows (concatenated members are one stream)
                inflater = zlib.decompressobj(wbits=31)
        if not inflater.eof:
            raise InvalidCloudWatchRecord("the record is gzip but truncated")
    except zlib.error as error:
        raise InvalidCloudWatchRecord(f"the record starts like gzip but does not gunzip: "
                                      f"{error}") from None
    return bytes(out)


def read_subscription(value: bytes, max_bytes: int) -> Subscription:
    """Gunzip and check a subscription record; InvalidCloudWatchRecord if it is none."""
    text = gunzip(value, max_bytes * EXPANSION_LIMIT)
    try:
        parsed = json_codec.loads(text)  # integers beyond 64 bits kept exactly
    except orjson.JSONDecodeError as error:
        raise InvalidCloudWatchRecord(f"the gzip record does not hold JSON: {error}") from None
    if not isinstance(parsed, dict) or parsed.get("messageType") not in (DATA_MESSAGE,
                                                                          CONTROL_MESSAGE):
        keys = ", ".join(sorted(parsed)[:8]) if isinstance(parsed, dict) else type(parsed).__name__
        raise InvalidCloudWatchRecord(
            "the gzip record is not a CloudWatch Logs subscription record (`messageType` "
            f"DATA_MESSAGE or CONTROL_MESSAGE); it holds: {keys}")
    subscription = Subscription(parsed["messageType"], _string(parsed.get("logGroup")),
                                _string(parsed.get("logStream")), _string(parsed.get("owner")))
    if subscription.message_type == CONTROL_MESSAGE:
        return subscription
    events = parsed.get("logEvents")
    if not isinstance(events, list) or not all(
            isinstance(event, dict) and isinstance(event.get("message"), str)
            for event in events):
        raise InvalidCloudWatchRecord("a DATA_MESSAGE needs `logEvents`: a list of objects "
                                      "with a string `message`")
    subscription.log_events = events
    return subscription


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def with_one_log_event(value: bytes, index: int, max_bytes: int) -> bytes:
    """The subscription record with only its log event `index` (gzip again): what
    ``sluice dlq replay`` sends back for one failed event, so the others are not written twice."""
    record = json_codec.loads(gunzip(value, max_bytes * EXPANSION_LIMIT))
    record["logEvents"] = [record["logEvents"][index]]
    return gzip.compress(json_codec.dumps(record))
