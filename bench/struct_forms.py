"""The road not taken, kept to be measured: msgspec Structs decoded straight from a record's bytes.

`bench/json_decoding.py` times this next to the typed pass Sluice runs
(``worker.events.typed_forms``: the record decoded to a dict, then read by a tight normaliser).
Here one Struct names the fields of both common shapes with the types producers send, so msgspec
checks them in C while it decodes, and the document is built from attributes; whatever fails
the Struct's types goes to the general path, which decodes the record again.

It is not exact, which is why the worker does not use it: msgspec *skips* the fields a Struct
does not name without checking them, so invalid UTF-8 or a number out of range (``1e400``) in
an unknown field passes here while the dict decoder rejects the record (``InvalidJson``).
Checking for those would take a second scan of every record.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from worker.events.decoding import decode_record
from worker.events.field_values import format_epoch_millis
from worker.events.normalize import normalize
from worker.events.records import SourceRecord
from worker.events.typed_forms import GENERAL, timestamp_text

Id = str | int | None
Object = dict[str, Any] | None
Text = str | None


class CommonForms(msgspec.Struct, gc=False):
    """The fields of a Segment event and of an access log, with the types producers send."""

    type: Literal["track", "identify", "page", "screen", "group", "alias"] | None = None
    requestId: Text = None
    messageId: Text = None
    userId: Id = None
    anonymousId: Id = None
    groupId: Id = None
    previousId: Id = None
    event: Text = None
    name: Text = None
    timestamp: Text = None
    originalTimestamp: Text = None
    sentAt: Text = None
    receivedAt: Text = None
    context: Object = None
    properties: Object = None
    traits: Object = None
    integrations: Object = None
    projectId: Any = None
    sourceId: Any = None
    ip: Text = None
    sourceIp: Text = None
    httpMethod: Text = None
    resourcePath: Text = None
    path: Text = None
    protocol: Text = None
    status: int | None = None
    responseLength: int | None = None
    apiId: Text = None
    stage: Text = None
    userAgent: Text = None
    identity: Any = None
    requestTime: Text = None
    requestTimeEpoch: int | None = None
    # Envelopes: present (even null), the general path decides.
    batch: Any = msgspec.UNSET
    Record: Any = msgspec.UNSET
    payload: Any = msgspec.UNSET


_decoder = msgspec.json.Decoder(CommonForms)
_UNSET = msgspec.UNSET


def document(record: SourceRecord) -> tuple[str, dict[str, Any]] | None:
    """The record's one event as a document, through the Struct or, failing it, the general
    path (None when the record yields no single event)."""
    value = record.value or b""
    typed = None
    if value.isascii():  # invalid UTF-8 in a skipped field would pass the Struct
        try:
            fields = _decoder.decode(value)
        except msgspec.DecodeError:
            pass
        else:
            typed = _from_struct(fields, record)
    if typed is not None:
        return typed
    try:
        events = decode_record(value, 1 << 20).events
        return normalize(events[0], record) if len(events) == 1 else None
    except Exception:  # noqa: BLE001 (a fault: the general path has named it)
        return None


def _from_struct(o: CommonForms, record: SourceRecord) -> tuple[str, dict[str, Any]] | None:
    if o.batch is not _UNSET or o.Record is not _UNSET or o.payload is not _UNSET:
        return None
    millis = record.timestamp_ms
    if o.receivedAt is not None or millis is None or millis < 0:
        return None
    received_at = format_epoch_millis(millis)
    if o.type is not None:
        event_id, built = o.messageId, _segment(o, received_at)
        form = "segment"
    elif o.requestId:
        event_id, built = o.requestId, _access_log(o, received_at)
        form = "access_log"
    else:
        return None
    if not event_id or built is None:
        return None
    built["event_id"] = event_id
    built["input_format"] = form
    position = record.position
    built["kafka"] = {"topic": position.topic, "partition": position.partition,
                      "offset": position.offset}
    return event_id, built


def _id(value: str | int | None) -> str | None:
    return None if value is None or value == "" else str(value)


def _segment(o: CommonForms, received_at: str) -> dict[str, Any] | None:
    user_id, anonymous_id = _id(o.userId), _id(o.anonymousId)
    if user_id is None and anonymous_id is None:
        return None
    sent_at = None if o.sentAt is None else timestamp_text(o.sentAt)
    stamp = None if o.timestamp is None else timestamp_text(o.timestamp)
    original = None if o.originalTimestamp is None else timestamp_text(o.originalTimestamp)
    if sent_at is GENERAL or stamp is GENERAL or original is GENERAL:
        return None
    document: dict[str, Any] = {"type": o.type}
    if o.type == "track":
        if not o.event or not o.event.strip():
            return None
        document["event"] = o.event
    if o.name:
        document["name"] = o.name
    if anonymous_id is not None:
        document["anonymous_id"] = anonymous_id
    if user_id is not None:
        document["user_id"] = user_id
    if o.groupId is not None and o.groupId != "":
        document["group_id"] = str(o.groupId)
    if o.previousId is not None and o.previousId != "":
        document["previous_id"] = str(o.previousId)
    document["timestamp"] = stamp or original or sent_at or received_at
    if original is not None:
        document["original_timestamp"] = original
    document["received_at"] = received_at
    if sent_at is not None:
        document["sent_at"] = sent_at
    for key, value in (("context", o.context), ("properties", o.properties),
                       ("traits", o.traits)):
        if value is not None:
            document[key] = value
    if o.projectId or o.sourceId:
        return None  # not in the benchmark's events: left to the general path
    source = o.context.get("source") if o.context else None
    if isinstance(source, dict) and isinstance(source.get("id"), str):
        document["source_id"] = source["id"]
    if o.integrations is not None:
        document["integrations"] = o.integrations
    return document


def _access_log(o: CommonForms, received_at: str) -> dict[str, Any] | None:
    stamp = (timestamp_text(o.requestTimeEpoch) if o.requestTimeEpoch is not None
             else timestamp_text(o.requestTime) if o.requestTime else None)
    if stamp is GENERAL:
        return None
    document: dict[str, Any] = {"type": "access_log", "request_id": o.requestId,
                                "timestamp": stamp or received_at, "received_at": received_at}
    for key, value in (("ip", o.ip or o.sourceIp), ("http_method", o.httpMethod),
                       ("resource_path", o.resourcePath), ("path", o.path),
                       ("protocol", o.protocol), ("status", o.status),
                       ("response_length", o.responseLength), ("api_id", o.apiId),
                       ("stage", o.stage)):
        if value is not None and value != "":
            document[key] = value
    identity = o.identity
    key_id = identity.get("apiKeyId") if isinstance(identity, dict) else None
    if not (isinstance(key_id, str) and key_id and key_id != "-"):
        return None  # the flattened spellings: left to the general path
    document["api_key_id"] = key_id
    if o.userAgent:
        document["user_agent"] = o.userAgent
    if o.apiId:
        document["source_id"] = o.apiId
    return document
