"""A Kafka record's headers on its documents: the ``headers`` field.

Producers put trace context (``traceparent``), content types, tenant or schema ids in record
headers; the document keeps them (SLUICE_DOCUMENT_HEADERS=false leaves them out) as one object,
header name → value, in every format:

* a value that is UTF-8 is kept as its **text**: ``{"traceparent": "00-4bf9…-01"}``;
* any other value is **marked as base64** by an object of its own:
  ``{"x-digest": {"base64": "3q2+7w=="}}``. A text value is always a JSON string, so the two
  never mix up, and a reader decodes only the marked ones;
* a name that occurs more than once (Kafka allows it) keeps every value, in order, as a list:
  ``{"x-hop": ["a", "b"]}``;
* a header without a value (null) is kept as an empty string: the consumer hands both over as
  empty bytes.

Sluice's own headers (``sluice.*``: the dead-letter reason and the replay lineage that
``sluice dlq replay`` puts on a replayed record) are **left out**. They describe what Sluice did
with the record, not what the producer sent; kept, a replayed event's document would differ from
the copy the first pass wrote to the sinks that accepted it (and from itself at every further
replay), where a replay is meant to deliver the same document under the same id.

Elasticsearch maps the object as ``flattened`` (``headers.traceparent`` is a keyword field),
Parquet and the Athena tables hold it as JSON text, as they hold ``context``.
"""

from __future__ import annotations

import base64
from typing import Any

from worker.events.records import DLQ_HEADER_PREFIX

BASE64_MARK = "base64"

# The last record's headers and their field: the events of one record (up to a Segment batch's
# hundreds) share them, so they are converted once per record, and its documents share the
# (never modified) object.
_last: tuple[object, dict[str, Any] | None] = ((), None)


def headers_field(headers: tuple[tuple[str, bytes], ...]) -> dict[str, Any] | None:
    """The ``headers`` field of a record's documents; None when nothing is left to keep."""
    global _last
    if headers is _last[0]:
        return _last[1]
    field = _convert(headers)
    _last = (headers, field)
    return field


def _convert(headers: tuple[tuple[str, bytes], ...]) -> dict[str, Any] | None:
    field: dict[str, Any] = {}
    for name, value in headers:
        if name.startswith(DLQ_HEADER_PREFIX):
            continue
        try:
            kept: Any = value.decode()  # strict: text only if the bytes are UTF-8
        except UnicodeDecodeError:
            kept = {BASE64_MARK: base64.b64encode(value).decode()}
        if name not in field:
            field[name] = kept
        elif isinstance(field[name], list):  # repeated before: values are never lists
            field[name].append(kept)
        else:
            field[name] = [field[name], kept]
    return field or None
