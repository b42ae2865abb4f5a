"""Where events go in Elasticsearch: index names from a pattern, and the index template.

The index pattern is a ``strftime`` pattern applied to the event's ``timestamp`` (UTC):
``events-%Y.%m.%d`` (the default) writes daily indices such as ``events-2026.11.22``; a pattern
without ``%`` is one fixed index or data stream. The template matches every index the pattern
can produce (``events-*``) and maps the document shape of ``worker.events.normalize`` as seed 001
does: keyword ids, date timestamps, plus the access-log and enrichment fields.

``context``, ``properties``, ``traits`` and the record's ``headers`` are what producers put
there, with keys and types nobody controls: mapped dynamically, every new key is a new field
(until the index's field limit refuses documents: mapping explosion) and the first document
fixes each key's type (a later ``"price": "ten"`` after ``"price": 10`` is rejected: type
conflicts, dead letters for a producer's whim). They are mapped as ``flattened``: one field
each, whatever they hold; every leaf value is indexed as a keyword, so they stay searchable
(term, terms, prefix, exists, range as text) and nothing conflicts. What they give up is numeric
aggregations on a property: map such a field yourself (a template of your own,
SLUICE_ELASTICSEARCH_INSTALL_TEMPLATE=false) or use a runtime field.

The other rules of Elasticsearch's mapping reference the template follows (a unit test,
``tests/unit/sinks/elasticsearch/test_naming.py``, feeds it documents of every shape Sluice
accepts through a checker of those rules, ``tests/support/es_mapping.py``):

* ``integrations`` (Segment sends ``"Amplitude": true`` in one event and ``"Amplitude":
  {"session_id": …}`` in the next) is an object with ``enabled: false``: kept in ``_source``,
  never parsed, so no shape conflicts with another;
* ``ip`` is a ``keyword``: API Gateway logs one address, but a forwarded list
  (``"1.2.3.4, 10.0.0.1"``) is text an ``ip`` field cannot hold (rejected, or with
  ``ignore_malformed`` silently unsearchable). The sub-field ``ip.address`` is typed ``ip`` for
  CIDR and range queries on single addresses (``ignore_malformed``: a list is simply not in it);
* every keyword, and every leaf of a flattened field, has ``ignore_above: 8191``: a longer value
  stays in ``_source`` but is not indexed, where a term over Lucene's 32,766 bytes (8191
  characters of 4 UTF-8 bytes) would reject the whole document;
* ``status`` and ``response_length`` are ``long``: the normaliser accepts any 64-bit integer;
* the template maps every field a document can have, so none is mapped dynamically by the
  first document that carries it.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from worker.events.event_time import EventTimeWindow
from worker.events.records import Event

_STRFTIME_DIRECTIVE = re.compile(r"%.")

# The most characters that always fit Lucene's 32,766-byte term limit in UTF-8 (4 bytes each).
IGNORE_ABOVE = 8191
KEYWORD = {"type": "keyword", "ignore_above": IGNORE_ABOVE}
FLATTENED = {"type": "flattened", "ignore_above": IGNORE_ABOVE}
DATE = {"type": "date"}

DOCUMENT_PROPERTIES: dict[str, Any] = {
    "event_id": KEYWORD,
    "type": KEYWORD,
    "event": KEYWORD,
    "name": KEYWORD,
    "anonymous_id": KEYWORD,
    "user_id": KEYWORD,
    "group_id": KEYWORD,
    "previous_id": KEYWORD,
    "timestamp": DATE,
    "@timestamp": DATE,
    "received_at": DATE,
    "sent_at": DATE,
    "original_timestamp": DATE,
    # Producer-defined objects: one flattened field each (see the module docstring).
    "context": FLATTENED,
    "properties": FLATTENED,
    "traits": FLATTENED,
    "integrations": {"type": "object", "enabled": False},
    "source_id": KEYWORD,
    "source_name": KEYWORD,
    # CloudWatch Logs and Firehose: the log group and stream, a raw log event's text, the
    # delivery stream and its common attributes (producer-defined keys: flattened)
    "log_group": KEYWORD,
    "log_stream": KEYWORD,
    "message": {"type": "text"},
    "firehose_source_arn": KEYWORD,
    "firehose_attributes": {"type": "flattened"},
    # API Gateway access logs
    "request_id": KEYWORD,
    "ip": {**KEYWORD, "fields": {"address": {"type": "ip", "ignore_malformed": True}}},
    "http_method": KEYWORD,
    "resource_path": KEYWORD,
    "path": KEYWORD,
    "protocol": KEYWORD,
    "status": {"type": "long"},
    "response_length": {"type": "long"},
    "api_id": KEYWORD,
    "stage": KEYWORD,
    "api_key_id": KEYWORD,
    "user_agent": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
    # enrichment
    "customer_id": KEYWORD,
    "customer_name": KEYWORD,
    "usage_plan_id": KEYWORD,
    "usage_plan_name": KEYWORD,
    "api_key_name": KEYWORD,
    "enriched": {"type": "boolean"},
    # provenance
    "input_format": KEYWORD,
    "kafka": {
        "properties": {
            "topic": KEYWORD,
            "partition": {"type": "integer"},
            "offset": {"type": "long"},
            "batch_index": {"type": "integer"},
        }
    },
    # the record's headers (worker.events.headers)
    "headers": FLATTENED,
}


def is_fixed(pattern: str) -> bool:
    """True when the pattern names one index (no strftime directive)."""
    return _STRFTIME_DIRECTIVE.search(pattern) is None


def index_glob(pattern: str) -> str:
    """The index pattern a template needs: the dated part becomes one ``*``."""
    directives = list(_STRFTIME_DIRECTIVE.finditer(pattern))
    if not directives:
        return pattern
    return pattern[: directives[0].start()] + "*" + pattern[directives[-1].end():]


class IndexNamer:
    """Index names for event timestamps; cached per hour, since names change at most hourly.

    An event is named by its ``timestamp`` only inside the accepted event-time window
    (``worker.events.event_time``): a device with a bad clock must not create an index per day of
    the years 1000-9999. Outside it, the record's Kafka timestamp names the index.
    """

    def __init__(self, pattern: str, window: EventTimeWindow | None = None) -> None:
        self.pattern = pattern
        self._fixed = is_fixed(pattern)
        self._window = window

    def for_event(self, event: Event) -> str:
        """The index of an event: by its timestamp, filed by the event-time window."""
        if self._fixed:
            return self.pattern
        stamp = event.document["timestamp"]
        if self._window is not None:
            stamp = self._window.filing_stamp(stamp, event.record)
        return self(stamp)

    def __call__(self, timestamp: str) -> str:
        if self._fixed:
            return self.pattern
        # Normalised timestamps are "YYYY-MM-DDTHH:MM:SS.mmmZ": the hour prefix picks the name.
        return _name_for_hour(self.pattern, timestamp[:13])


@lru_cache(maxsize=4096)
def _name_for_hour(pattern: str, hour: str) -> str:
    return datetime.strptime(hour, "%Y-%m-%dT%H").strftime(pattern)


def index_template(pattern: str, data_stream: bool, shards: int = 1, replicas: int = 1) -> dict:
    """The body of ``PUT _index_template/<name>`` for indices made from `pattern`."""
    template: dict[str, Any] = {
        "index_patterns": [index_glob(pattern)],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": shards, "number_of_replicas": replicas},
            "mappings": {"dynamic": True, "properties": DOCUMENT_PROPERTIES},
        },
        "_meta": {"managed_by": "sluice", "description": "Sluice event documents"},
    }
    if data_stream:
        template["data_stream"] = {}
    return template
