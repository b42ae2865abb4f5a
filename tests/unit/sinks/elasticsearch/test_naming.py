"""The index template against Elasticsearch's documented mapping rules, for every shape of document.

The local ES-API server accepts what a real Elasticsearch refuses, so these tests feed the
template's mappings documents built from the shapes producers send through a checker of those
rules (tests/support/es_mapping.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.support.es_mapping import DYNAMIC, IGNORED, INDEXED, REJECTED, STORED, MappingChecker
from tests.support.model_documents import RECORD, every_field_document, sample_documents
from worker.events.decoding import EventKind, InputForm, RawEvent
from worker.events.normalize import normalize
from worker.sinks.elasticsearch.naming import index_template

BIG = 123456789012345678901234567890
LONG_TEXT = "x" * 40_000  # over Lucene's 32,766-byte term limit


def _mappings(data_stream: bool = False) -> dict[str, Any]:
    pattern = "events" if data_stream else "events-%Y.%m.%d"
    return index_template(pattern, data_stream)["template"]["mappings"]


def _segment(headers: tuple[tuple[str, bytes], ...] = (), **fields: Any) -> dict[str, Any]:
    base = {"type": "track", "event": "Signed Up", "userId": "u1"}
    raw = RawEvent(EventKind.SEGMENT, InputForm.SEGMENT, {**base, **fields})
    return normalize(raw, replace(RECORD, headers=headers))[1]


def _access(**fields: Any) -> dict[str, Any]:
    raw = RawEvent(EventKind.ACCESS_LOG, InputForm.ACCESS_LOG, {"requestId": "r-1", **fields})
    return normalize(raw, RECORD)[1]


def _shapes() -> list[dict[str, Any]]:
    """Documents of the shapes producers send, in an order that provokes conflicts."""
    return [
        *sample_documents(10),
        every_field_document(),
        # Segment's integrations: a boolean for one destination, an object in the next event.
        _segment(integrations={"All": True, "Amplitude": True}),
        _segment(integrations={"Amplitude": {"session_id": 1_732_000_000_000}}),
        _segment(integrations={"Mixpanel": [1, "a", {"b": None}], "Amplitude": "no"}),
        # Producer objects whose keys change type from one event to the next.
        _segment(properties={"price": 10, "plan": "pro"}),
        _segment(properties={"price": "ten", "plan": {"name": "pro", "seats": [1, 2]}}),
        _segment(properties={"price": {"amount": 10}, "id": BIG, "neg": -BIG}),
        _segment(type="identify", traits={"address": {"city": "Lyon"}, "age": 41}),
        _segment(type="identify", traits={"address": "Lyon", "age": "forty-one"}),
        _segment(context={"page": {"url": LONG_TEXT}}, properties={"blob": LONG_TEXT}),
        _segment(userId=BIG, messageId="m-big"),
        # Access logs: one address, IPv6, a forwarded list, 64-bit integers.
        _access(ip="203.0.113.9"),
        _access(ip="2001:db8::1"),
        _access(ip="203.0.113.9, 10.0.0.1"),
        _access(sourceIp="unknown", status=2**40, responseLength=2**62),
        _access(userAgent=LONG_TEXT, path="/" + LONG_TEXT),
        # The record's headers: text, base64 for other bytes, a repeated name as a list.
        _segment(headers=(("traceparent", b"00-1"), ("x-digest", b"\xde\xad"),
                          ("x-hop", b"a"), ("x-hop", b"\xff"))),
        _segment(headers=(("traceparent", LONG_TEXT.encode()),)),
    ]


# What the template gives up on purpose: each (field, outcome) allowed besides "indexed".
_ON_PURPOSE = {
    ("integrations", STORED),      # enabled: false, kept in _source only
    ("ip.address", IGNORED),       # a forwarded list is in `ip` (keyword), not an address
    ("user_agent.keyword", IGNORED),  # ignore_above 512: the text field still has it
    ("path", IGNORED),             # ignore_above: longer than any term may be
}


@pytest.mark.parametrize("data_stream", [False, True], ids=["daily-indices", "data-stream"])
def test_every_template_field_takes_every_shape_producers_send(data_stream: bool) -> None:
    checker = MappingChecker(_mappings(data_stream))
    problems = []
    for number, document in enumerate(_shapes()):
        if data_stream:
            document = {**document, "@timestamp": document["timestamp"]}
        for verdict in checker.index(document):
            if verdict.outcome != INDEXED and (verdict.path, verdict.outcome) not in _ON_PURPOSE:
                problems.append((number, verdict))
    assert problems == []


def test_the_template_maps_every_field_a_document_can_have() -> None:
    fields = {name for document in _shapes() for name in document}
    mapped = set(_mappings()["properties"]) - {"@timestamp"}
    assert fields == mapped


def test_a_forwarded_ip_list_stays_searchable_and_a_single_address_is_an_ip() -> None:
    checker = MappingChecker(_mappings())
    outcomes = {(v.path, v.outcome) for v in checker.index(_access(ip="1.2.3.4, 10.0.0.1"))}
    assert ("ip", INDEXED) in outcomes and ("ip.address", IGNORED) in outcomes
    outcomes = {(v.path, v.outcome) for v in checker.index(_access(ip="1.2.3.4"))}
    assert ("ip", INDEXED) in outcomes and ("ip.address", INDEXED) in outcomes


# --- the checker knows the rules the template must follow ------------------------------------


def test_the_checker_finds_the_conflicts_of_a_dynamic_integrations_object() -> None:
    mappings = _mappings()
    dynamic = {**mappings, "properties": {
        name: mapping for name, mapping in mappings["properties"].items()
        if name != "integrations"}}
    checker = MappingChecker(dynamic)
    first = checker.index(_segment(integrations={"Amplitude": True}))
    assert (("integrations", DYNAMIC) in {(v.path, v.outcome) for v in first})
    second = checker.index(_segment(integrations={"Amplitude": {"session_id": 1}}))
    assert ("integrations.Amplitude", REJECTED) in {(v.path, v.outcome) for v in second}


@pytest.mark.parametrize(("mapping", "outcome"), [
    ({"type": "ip"}, REJECTED),
    ({"type": "ip", "ignore_malformed": True}, IGNORED),  # kept in _source, not searchable
])
def test_the_checker_knows_what_an_ip_field_does_with_a_list(mapping, outcome) -> None:
    checker = MappingChecker({"properties": {"ip": mapping}})
    assert [v.outcome for v in checker.index({"ip": "1.2.3.4, 10.0.0.1"})] == [outcome]


@pytest.mark.parametrize(("mapping", "value", "outcome"), [
    ({"type": "integer"}, 2**40, REJECTED),
    ({"type": "long"}, 2**40, INDEXED),
    ({"type": "keyword"}, LONG_TEXT, REJECTED),
    ({"type": "keyword", "ignore_above": 8191}, LONG_TEXT, IGNORED),
    ({"type": "flattened"}, {"a": LONG_TEXT}, REJECTED),
    ({"type": "flattened"}, "text", REJECTED),
    ({"type": "date"}, "2026-11-22T20:31:04.000Z", INDEXED),
    ({"type": "date"}, "yesterday", REJECTED),
])
def test_the_checker_applies_the_documented_rules(mapping, value, outcome) -> None:
    checker = MappingChecker({"properties": {"f": mapping}})
    assert checker.index({"f": value})[0].outcome == outcome
