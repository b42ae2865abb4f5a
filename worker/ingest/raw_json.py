"""The elements of a JSON body as the bytes they were sent as, never parsed and written again.

`sluice ingest` splits batches and arrays into one record per event. Each record's value is the
element's own bytes, cut out of the body by msgspec's ``Raw`` (which validates the JSON and
keeps the span it covers), so what reaches the topic is what the sender wrote: integers beyond
64 bits keep their digits, floats their spelling, objects their key order and duplicates. Only
the fields a record's key needs (``userId``, ``anonymousId``) are read, into a small struct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from worker.ingest.errors import BadBody
from worker.ingest.keys import event_key


class _Envelope(msgspec.Struct):
    """A Segment batch: its events and the fields they share, each as sent."""

    batch: msgspec.Raw = msgspec.Raw()
    context: msgspec.Raw = msgspec.Raw()
    sentAt: msgspec.Raw = msgspec.Raw()
    writeKey: Any = None


class _Who(msgspec.Struct):
    """The fields of an event that choose its key (``worker.ingest.keys``)."""

    type: Any = None
    userId: Any = None
    anonymousId: Any = None
    requestId: Any = None
    apiKeyId: Any = None
    apiId: Any = None
    identity: Any = None


_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder(msgspec.Raw)
_ENVELOPE = msgspec.json.Decoder(_Envelope)
_WHO = msgspec.json.Decoder(_Who)


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch envelope: its elements' bytes, and the shared fields' bytes (empty if absent)."""

    elements: list[bytes]
    context: bytes
    sent_at: bytes
    write_key: Any


def _reason(error: msgspec.MsgspecError) -> str:
    return str(error).replace("JSON is malformed: ", "")


def check_json(body: bytes, what: str = "the body") -> None:
    """BadBody unless `body` is one valid JSON value."""
    try:
        _ANY.decode(body)
    except msgspec.MsgspecError as error:
        raise BadBody(f"{what} is not valid JSON: {_reason(error)}") from None


def array_elements(body: bytes) -> list[bytes]:
    """The elements of a JSON array body, each as its bytes."""
    try:
        return [bytes(raw) for raw in _ELEMENTS.decode(body)]
    except msgspec.ValidationError:
        raise BadBody("the body is not a JSON array") from None
    except msgspec.DecodeError as error:
        raise BadBody(f"the body is not valid JSON: {_reason(error)}") from None


def batch_envelope(body: bytes) -> Batch:
    """A JSON object with a ``batch`` array: the elements and the shared fields as bytes."""
    try:
        envelope = _ENVELOPE.decode(body)
    except msgspec.ValidationError as error:
        raise BadBody(f"the body is not a batch object: {error}") from None
    except msgspec.DecodeError as error:
        raise BadBody(f"the body is not valid JSON: {_reason(error)}") from None
    raw_batch = bytes(envelope.batch)
    if not raw_batch:
        raise BadBody("the body has no `batch`: expected {\"batch\": [event, …]}")
    try:
        elements = [bytes(raw) for raw in _ELEMENTS.decode(raw_batch)]
    except msgspec.ValidationError:
        raise BadBody("`batch` is not a JSON array of events") from None
    context, sent_at = bytes(envelope.context), bytes(envelope.sentAt)
    return Batch(elements, b"" if context == b"null" else context,
                 b"" if sent_at == b"null" else sent_at, envelope.writeKey)


def is_object(element: bytes) -> bool:
    """Whether an element (valid JSON, as cut out) is an object."""
    return element.lstrip()[:1] == b"{"


def key_of(element: bytes, fallback: str | None = None) -> bytes | None:
    """The record key of one element (``worker.ingest.keys``), else the fallback's."""
    fields: dict[str, Any] | None = None
    if is_object(element):
        try:
            who = _WHO.decode(element)
        except msgspec.MsgspecError:
            who = None
        if who is not None:
            fields = {name: getattr(who, name) for name in who.__struct_fields__
                      if getattr(who, name) is not None}
            if who.type is not None:
                fields["type"] = who.type
    key = event_key(fields) if fields else None
    key = key or fallback
    return key.encode() if key else None
