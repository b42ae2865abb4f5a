"""Normalisation: one document shape for every event, whatever form it came in.

The shape follows the Elasticsearch mapping users already run (seed 001): ``event_id``,
``type``, ``event``, ``anonymous_id``, ``user_id``, ``timestamp``, ``received_at``, ``sent_at``,
``context``, ``properties``, ``traits``, ``source_id`` …, plus the API Gateway access-log fields
(``request_id``, ``http_method``, ``status``, ``api_key_id`` …), the input form and the Kafka
position, and the record's headers (``worker.events.headers``). Timestamps are UTC ISO-8601 with
milliseconds (``2026-11-22T20:31:04.000Z``).
Fields without a value are left out rather than written as null.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from worker.events import json_codec
from worker.events.decoding import EventKind, RawEvent
from worker.events.errors import (
    InvalidTimestamp,
    MissingField,
    UnencodableEvent,
    UnknownFormat,
    WrongType,
)
from worker.events.headers import headers_field
from worker.events.records import REPLAY_EVENT_ID_HEADER, SourceRecord

SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
ACCESS_LOG_TYPE = "access_log"
LOG_TYPE = "log"

# Epoch numbers above this are milliseconds (1e11 seconds is the year 5138).
_EPOCH_MILLIS_THRESHOLD = 100_000_000_000
# Integer fields are 64-bit columns in Parquet (worker/events/parquet_schema.py) and `long` in
# Elasticsearch; the JSON parser accepts up to 2**64 - 1.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# str.isdigit() accepts "²" and other digits int() refuses.
_ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")


def normalize(raw: RawEvent, record: SourceRecord,
              keep_headers: bool = True) -> tuple[str, dict[str, Any]]:
    """The event id and document of a raw event; with `keep_headers`, the record's headers
    too (``worker.events.headers``). Raises DecodeError if a field is invalid."""
    received_at = _received_at(raw.fields, record)
    if raw.kind is EventKind.SEGMENT:
        document = _segment_document(raw.fields, received_at)
        producer_id = raw.fields.get("messageId")
    elif raw.kind is EventKind.LOG:
        document = _log_document(raw.fields, received_at)
        producer_id = raw.fields.get("id")
    else:
        document = _access_log_document(raw.fields, received_at)
        producer_id = raw.fields.get("requestId")
    if raw.extra:
        # Set outside the event's JSON: the write key's source, the log group, Firehose's
        # attributes (``worker.events.ingest_headers``, ``decoding``); they override.
        document.update(raw.extra)
    event_id = (
        str(producer_id)
        if isinstance(producer_id, (str, int)) and str(producer_id)
        else replayed_event_id(raw, record) or derived_event_id(raw, record)
    )
    document["event_id"] = event_id
    document["input_format"] = raw.form.value
    position = record.position
    kafka = document["kafka"] = {
        "topic": position.topic, "partition": position.partition, "offset": position.offset,
    }
    if raw.batch_index is not None:
        kafka["batch_index"] = raw.batch_index
    if keep_headers and record.headers:
        headers = headers_field(record.headers)
        if headers is not None:
            document["headers"] = headers
    return event_id, document


def replayed_event_id(raw: RawEvent, record: SourceRecord) -> str | None:
    """The id a replayed event had when it failed (``sluice.replay.event_id``, set by
    ``sluice dlq replay``): its derived id came from its first Kafka position, and a new id
    would duplicate it in Elasticsearch and disagree with the copy other sinks hold. Only for
    the record's own event: a replay carries exactly one event (one event of a batch is
    replayed alone)."""
    if raw.batch_index is not None or not record.headers:
        return None
    for name, value in record.headers:
        if name == REPLAY_EVENT_ID_HEADER and value:
            return value.decode(errors="replace")
    return None


def derived_event_id(raw: RawEvent, record: SourceRecord) -> str:
    """A deterministic id from the Kafka position and the content: the same record consumed
    again gets the same id (a dead letter's replay keeps it through `replayed_event_id`)."""
    position = record.position
    digest = hashlib.sha256()
    digest.update(f"{position.topic}/{position.partition}/{position.offset}/".encode())
    digest.update(f"{raw.batch_index}/".encode())
    try:
        digest.update(json_codec.dumps(raw.fields, option=orjson.OPT_SORT_KEYS))
    except TypeError as error:  # nested more deeply than the encoder allows
        raise UnencodableEvent(f"the event cannot be encoded as JSON: {error}") from None
    return digest.hexdigest()[:32]


# --- Segment events ----------------------------------------------------------------------------


def _segment_document(fields: dict[str, Any], received_at: str) -> dict[str, Any]:
    kind = fields.get("type")
    if not isinstance(kind, str):
        raise WrongType(f"`type` is {_describe(kind)}, expected one of {_types_list()}")
    if kind not in SEGMENT_TYPES:
        raise UnknownFormat(f"`type` is {kind!r}, expected one of {_types_list()}")
    user_id = _optional_id(fields, "userId")
    anonymous_id = _optional_id(fields, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise MissingField("a Segment event needs `userId` or `anonymousId`; it has neither")
    event_name = fields.get("event")
    if kind == "track" and (not isinstance(event_name, str) or not event_name.strip()):
        raise MissingField(
            f"a track event needs a non-empty string `event`; got {_describe(event_name)}"
        )
    context = _optional_object(fields, "context")
    sent_at = _optional_timestamp(fields, "sentAt")
    timestamp = (
        _optional_timestamp(fields, "timestamp")
        or _optional_timestamp(fields, "originalTimestamp")
        or sent_at
        or received_at
    )
    return _drop_none(
        {
            "type": kind,
            "event": event_name if kind == "track" else None,
            "name": _optional_string(fields, "name"),
            "anonymous_id": anonymous_id,
            "user_id": user_id,
            "group_id": _optional_id(fields, "groupId"),
            "previous_id": _optional_id(fields, "previousId"),
            "timestamp": timestamp,
            "original_timestamp": _lenient_timestamp(fields, "originalTimestamp"),
            "received_at": received_at,
            "sent_at": sent_at,
            "context": context,
            "properties": _optional_object(fields, "properties"),
            "traits": _optional_object(fields, "traits"),
            "source_id": _source_id(fields, context),
            "integrations": _optional_object(fields, "integrations"),
        }
    )


def _source_id(fields: dict[str, Any], context: dict[str, Any] | None) -> str | None:
    for candidate in (fields.get("projectId"), fields.get("sourceId")):
        if isinstance(candidate, str) and candidate:
            return candidate
    if context:
        source = context.get("source")
        if isinstance(source, dict) and isinstance(source.get("id"), str):
            return str(source["id"])
    return None


def _types_list() -> str:
    return "/".join(sorted(SEGMENT_TYPES))


# --- raw log events (CloudWatch Logs messages that are not access logs) ---------------------------


def _log_document(fields: dict[str, Any], received_at: str) -> dict[str, Any]:
    message = fields.get("message")
    if not isinstance(message, str):
        raise WrongType(f"a log event's `message` is {_describe(message)}, expected text")
    return _drop_none(
        {
            "type": LOG_TYPE,
            "message": message,
            "timestamp": _optional_timestamp(fields, "timestamp") or received_at,
            "received_at": received_at,
        }
    )


# --- API Gateway access logs -------------------------------------------------------------------


def _access_log_document(fields: dict[str, Any], received_at: str) -> dict[str, Any]:
    request_id = fields.get("requestId")
    if not isinstance(request_id, str) or not request_id:
        raise MissingField(
            f"an access-log record needs a string `requestId`; got {_describe(request_id)}"
        )
    timestamp = (
        _optional_timestamp(fields, "requestTimeEpoch")
        or _optional_timestamp(fields, "requestTime")
        or received_at
    )
    return _drop_none(
        {
            "type": ACCESS_LOG_TYPE,
            "request_id": request_id,
            "timestamp": timestamp,
            "received_at": received_at,
            "ip": _optional_string(fields, "ip") or _optional_string(fields, "sourceIp"),
            "http_method": _optional_string(fields, "httpMethod"),
            "resource_path": _optional_string(fields, "resourcePath"),
            "path": _optional_string(fields, "path"),
            "protocol": _optional_string(fields, "protocol"),
            "status": _optional_int(fields, "status"),
            "response_length": _optional_int(fields, "responseLength"),
            "api_id": _optional_string(fields, "apiId"),
            "stage": _optional_string(fields, "stage"),
            "api_key_id": access_log_api_key_id(fields),
            "user_agent": _optional_string(fields, "userAgent"),
            "source_id": _optional_string(fields, "apiId"),
        }
    )


def access_log_api_key_id(fields: dict[str, Any]) -> str | None:
    """The API key id: ``identity.apiKeyId`` nested or flattened (seed 003), or ``apiKeyId``."""
    identity = fields.get("identity")
    candidates = (
        identity.get("apiKeyId") if isinstance(identity, dict) else None,
        fields.get("identity.apiKeyId"),
        fields.get("apiKeyId"),
    )
    for candidate in candidates:
        # API Gateway writes "-" for a request without a key.
        if isinstance(candidate, str) and candidate and candidate != "-":
            return candidate
    return None


# --- field helpers -----------------------------------------------------------------------------


def _received_at(fields: dict[str, Any], record: SourceRecord) -> str:
    received = _optional_timestamp(fields, "receivedAt")
    if received:
        return received
    if record.timestamp_ms is not None and record.timestamp_ms >= 0:
        return _format_epoch_millis(record.timestamp_ms)
    return format_timestamp(datetime.now(UTC))


@lru_cache(maxsize=4096)
def _format_epoch_millis(millis: int) -> str:
    # Records of one producer batch share their timestamp: format each millisecond once.
    return format_timestamp(datetime.fromtimestamp(millis / 1000, UTC))


def _lenient_timestamp(fields: dict[str, Any], name: str) -> str | None:
    """A timestamp kept for the record only (``originalTimestamp``): one that cannot be read is
    left out rather than failing an event whose own time is fine."""
    try:
        return _optional_timestamp(fields, name)
    except InvalidTimestamp:
        return None


def _optional_string(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WrongType(f"`{name}` is {_describe(value)}, expected a string")
    return value


def _optional_id(fields: dict[str, Any], name: str) -> str | None:
    """Ids are strings; many clients send numbers, which are kept as their decimal text."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WrongType(f"`{name}` is {_describe(value)}, expected a string id")
    return str(value)


def _optional_object(fields: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise WrongType(f"`{name}` is {_describe(value)}, expected an object")
    return value


def _optional_int(fields: dict[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None or value in ("", "-"):
        return None
    if isinstance(value, bool):
        raise WrongType(f"`{name}` is {_describe(value)}, expected a number")
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    if isinstance(value, str) and _ASCII_INTEGER.fullmatch(value.strip()):
        return int(value)
    raise WrongType(f"`{name}` is {_describe(value)}, expected a number (a 64-bit integer)")


# UTC ISO-8601 with a Z, to the second or the millisecond, years 1000-9999: what Segment's
# libraries send. Such a value is already (nearly) in the form documents carry.
_UTC_ISO = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z")


def _optional_timestamp(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if type(value) is str and _UTC_ISO.fullmatch(value):
        # The common case, without the round trip through datetime: checked for a real date
        # and time, and given milliseconds if it has none (the same text the slow path makes).
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value if len(value) == 24 else value[:-1] + ".000Z"
    parsed = parse_timestamp(value)
    if parsed is None:
        raise InvalidTimestamp(
            f"`{name}` is {_describe(value)}: expected ISO-8601, Common Log Format "
            "(22/Nov/2026:20:31:04 +0000) or epoch seconds/milliseconds"
        )
    return format_timestamp(parsed)


_PARSERS: tuple[Callable[[str], datetime], ...] = (
    datetime.fromisoformat,
    lambda text: datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z"),
)


def parse_timestamp(value: object) -> datetime | None:
    """A timezone-aware UTC datetime from ISO-8601, CLF or epoch s/ms, in the years 1000-9999;
    None if it is none of them."""
    moment = _parse_timestamp(value)
    if moment is None:
        return None
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    # Index names and S3 keys need four-digit years.
    return moment if 1000 <= moment.year <= 9999 else None


def _parse_timestamp(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) >= _EPOCH_MILLIS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _ASCII_INTEGER.fullmatch(text):
        return _parse_timestamp(int(text))
    for parser in _PARSERS:
        try:
            moment = parser(text)
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def format_timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a Z."""
    # isoformat is several times faster than strftime; years are 1000-9999 (parse_timestamp).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _describe(value: object) -> str:
    if value is None:
        return "missing"
    text = json_codec.dumps(value).decode() if not isinstance(value, bytes) else repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
    return f"{kind} ({shown})"


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
