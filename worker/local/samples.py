"""Sample traffic: realistic records in every input form Sluice reads, for the demo and tests.

The forms are the ones users produce today (see ``shared/seeds/``): Segment-spec events, Segment
batch envelopes, the Firehose-style envelope of an API Gateway → Firehose mapping, a bare base64
string, and API Gateway access-log records.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

SEGMENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
SAMPLE_FORMS = ("segment", "segment_batch", "firehose", "base64", "access_log")
TRACK_EVENTS = ("Signed Up", "Order Completed", "Product Viewed", "Checkout Started")
API_KEYS = ("key-acme", "key-globex", "key-initech")

# The demo's catalog knows two of the three keys: key-initech shows an unenriched event.
DEMO_CATALOG = (
    {"api_key_id": "key-acme", "customer_id": "cust-acme", "customer_name": "Acme Corp",
     "usage_plan_id": "plan-gold", "usage_plan_name": "Gold"},
    {"api_key_id": "key-globex", "customer_id": "cust-globex", "customer_name": "Globex",
     "usage_plan_id": "plan-free", "usage_plan_name": "Free"},
)


@dataclass(frozen=True)
class SampleRecord:
    """One Kafka record to produce: key, value bytes, and what it is (for reports and tests)."""

    key: bytes | None
    value: bytes
    form: str
    event_count: int


class SampleTraffic:
    """Deterministic (seeded) generator of sample records."""

    def __init__(self, seed: int = 7, start: datetime | None = None) -> None:
        self._random = random.Random(seed)
        self._start = start or datetime.now(UTC).replace(microsecond=0)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _time(self) -> str:
        moment = self._start - timedelta(seconds=self._random.randint(0, 3600))
        return moment.isoformat().replace("+00:00", "Z")

    def segment_event(self) -> dict[str, object]:
        """A Segment-spec event of a random type."""
        kind = self._random.choice(SEGMENT_TYPES)
        event: dict[str, object] = {
            "type": kind,
            "messageId": self._uuid(),
            "anonymousId": self._uuid(),
            "userId": f"user-{self._random.randint(1, 500)}",
            "timestamp": self._time(),
            "sentAt": self._time(),
            "context": {
                "library": {"name": "analytics.js", "version": "4.1.0"},
                "ip": f"203.0.113.{self._random.randint(1, 254)}",
                "userAgent": "Mozilla/5.0",
            },
            "writeKey": "demo-write-key",
        }
        if kind == "track":
            event["event"] = self._random.choice(TRACK_EVENTS)
            event["properties"] = {"revenue": round(self._random.uniform(1, 200), 2)}
        elif kind in {"page", "screen"}:
            event["name"] = "Pricing"
            event["properties"] = {"path": "/pricing", "title": "Pricing"}
        elif kind in {"identify", "group"}:
            event["traits"] = {"plan": self._random.choice(["free", "pro"]), "seats": 3}
            if kind == "group":
                event["groupId"] = f"group-{self._random.randint(1, 20)}"
        else:
            event["previousId"] = self._uuid()
        return event

    def access_log(self) -> dict[str, object]:
        """An API Gateway access-log record (seed 003's fields)."""
        return {
            "requestId": self._uuid(),
            "ip": f"198.51.100.{self._random.randint(1, 254)}",
            "requestTime": self._time(),
            "httpMethod": self._random.choice(["GET", "POST"]),
            "resourcePath": "/v1/events",
            "status": self._random.choice([200, 200, 200, 201, 400, 429]),
            "protocol": "HTTP/1.1",
            "responseLength": self._random.randint(20, 4000),
            "apiId": "a1b2c3d4e5",
            "stage": "prod",
            "identity": {"apiKeyId": self._random.choice(API_KEYS)},
        }

    def records(self, count: int) -> Iterator[SampleRecord]:
        """`count` records cycling through every input form."""
        forms = ("segment", "segment", "segment_batch", "firehose", "base64", "access_log")
        for index in range(count):
            form = forms[index % len(forms)]
            yield self.record(form)

    def record(self, form: str) -> SampleRecord:
        """One record of the named form."""
        if form == "segment":
            event = self.segment_event()
            return SampleRecord(str(event["messageId"]).encode(), _json(event), form, 1)
        if form == "segment_batch":
            batch = [self.segment_event() for _ in range(self._random.randint(2, 4))]
            envelope = {"batch": batch, "sentAt": self._time(), "context": {"source": "demo"}}
            return SampleRecord(None, _json(envelope), form, len(batch))
        if form == "firehose":
            data = base64.b64encode(_json(self.segment_event())).decode()
            envelope = {"DeliveryStreamName": "segment-events", "Record": {"Data": data}}
            return SampleRecord(None, _json(envelope), form, 1)
        if form == "base64":
            return SampleRecord(None, base64.b64encode(_json(self.segment_event())), form, 1)
        if form == "access_log":
            entry = self.access_log()
            return SampleRecord(str(entry["requestId"]).encode(), _json(entry), form, 1)
        raise ValueError(f"unknown sample form {form!r}")


def _json(value: object) -> bytes:
    return orjson.dumps(value)


@dataclass(frozen=True)
class MalformedSample:
    """A record Sluice must dead-letter, with the error class it must report."""

    name: str
    value: bytes
    error_class: str


def malformed_records(nonce: int, oversize_bytes: int = 1_100_000) -> list[MalformedSample]:
    """One record of every malformed kind; `nonce` makes each value unique."""
    track = {"type": "track", "event": "Signed Up", "userId": f"u-{nonce}", "n": nonce}
    return [
        MalformedSample("truncated-json", f'{{"n": {nonce}, "type": "track", "userId": '.encode(),
                        "InvalidJson"),
        MalformedSample("invalid-utf8", b'{"type": "track", "userId": "\xff\xfe", "n": %d}' % nonce,
                        "InvalidJson"),
        MalformedSample("not-an-object", f"[{nonce}, 2, 3]".encode(), "NotAnObject"),
        MalformedSample("empty-value", b"", "EmptyRecord"),
        MalformedSample("bad-base64-envelope",
                        _json({"Record": {"Data": f"%%not base64 {nonce}%%"}}), "InvalidBase64"),
        MalformedSample("unknown-object", _json({"hello": "world", "n": nonce}), "UnknownFormat"),
        MalformedSample("unknown-segment-type", _json({**track, "type": "purchase"}),
                        "UnknownFormat"),
        MalformedSample("missing-user-id", _json({**track, "userId": None}), "MissingField"),
        MalformedSample("properties-not-object", _json({**track, "properties": "cheap"}),
                        "WrongType"),
        MalformedSample("unparseable-timestamp", _json({**track, "timestamp": "yesterday"}),
                        "InvalidTimestamp"),
        MalformedSample("empty-batch", _json({"batch": [], "n": nonce}), "InvalidBatch"),
        MalformedSample("oversized", _json({**track, "blob": "x" * oversize_bytes}),
                        "RecordTooLarge"),
    ]
