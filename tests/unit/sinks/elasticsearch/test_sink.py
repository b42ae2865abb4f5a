"""The Elasticsearch sink's decisions, with a scripted client instead of a server."""

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from worker.config import load_settings
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.base import NOT_STARTED, SinkFailure
from worker.sinks.elasticsearch.naming import IndexNamer, index_glob, index_template
from worker.sinks.elasticsearch.sink import ElasticsearchSink


class Outcomes:
    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.failed: list[SinkFailure] = []

    def delivered_(self, sink: str, events: Sequence[Event]) -> None:
        self.delivered.extend(e.event_id for e in events)

    async def failed_(self, sink: str, failures: Sequence[SinkFailure]) -> None:
        self.failed.extend(failures)


class ScriptedClient:
    """Answers bulk requests from a script: a list of callables (ids -> response or raise)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[list[str]] = []

    async def bulk(self, operations: bytes, filter_path: str) -> Any:
        lines = operations.splitlines()
        ids = [next(iter(orjson.loads(a).values()))["_id"] for a in lines[::2]]
        self.requests.append(ids)
        step = self.script.pop(0) if self.script else (lambda ids: _items(ids))
        return SimpleNamespace(body=step(ids))

    async def info(self) -> dict:
        return {}

    async def close(self) -> None: ...


def _items(ids: list[str], statuses: dict[str, tuple[int, str]] | None = None) -> dict:
    statuses = statuses or {}
    items = []
    for event_id in ids:
        status, error_type = statuses.get(event_id, (201, ""))
        item: dict[str, Any] = {"status": status}
        if error_type:
            item["error"] = {"type": error_type, "reason": f"{error_type} for {event_id}"}
        items.append({"index": item})
    return {"errors": bool(statuses), "items": items}


def _api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(),
                           duration=0.0, node=NodeConfig("http", "localhost", 9200))
    return ApiError(f"HTTP {status}", meta, {})


def _event(event_id: str, timestamp: str = "2026-11-22T10:00:00.000Z") -> Event:
    record = SourceRecord(None, b"{}", KafkaPosition("events", 0, 0))
    return Event(event_id, {"event_id": event_id, "timestamp": timestamp, "type": "track"}, record)


def _sink(client: ScriptedClient, **overrides: Any) -> tuple[ElasticsearchSink, Outcomes]:
    outcomes = Outcomes()
    listener = SimpleNamespace(delivered=outcomes.delivered_, failed=outcomes.failed_)
    settings = load_settings(elasticsearch_retry_initial=0.001, elasticsearch_retry_max=0.002,
                             **overrides)
    sink = ElasticsearchSink(listener, settings)  # type: ignore[arg-type]
    sink._client = client  # type: ignore[assignment]
    return sink, outcomes


async def test_documents_are_indexed_by_event_id_into_the_daily_index() -> None:
    client = ScriptedClient()
    sink, outcomes = _sink(client)
    await sink.write([_event("a"), _event("b", "2026-11-23T00:00:00.000Z")])
    await sink.flush()
    assert outcomes.delivered == ["a", "b"]
    assert client.requests == [["a", "b"]]
    lines = sink._encode(_event("b", "2026-11-23T00:00:00.000Z")).splitlines()
    assert orjson.loads(lines[0]) == {"index": {"_index": "events-2026.11.23", "_id": "b"}}


async def test_only_items_refused_with_429_are_retried() -> None:
    client = ScriptedClient(
        lambda ids: _items(ids, {"b": (429, "es_rejected_execution_exception")}),
        lambda ids: _items(ids, {"b": (503, "unavailable_shards_exception")}),
    )
    sink, outcomes = _sink(client)
    await sink.write([_event("a"), _event("b"), _event("c")])
    await sink.flush()
    assert client.requests == [["a", "b", "c"], ["b"], ["b"]]
    assert sorted(outcomes.delivered) == ["a", "b", "c"] and outcomes.failed == []
    assert sink.stats.retried == 2


async def test_content_rejection_is_dead_lettered_with_the_elasticsearch_reason() -> None:
    client = ScriptedClient(lambda ids: _items(ids, {"b": (400, "document_parsing_exception")}))
    sink, outcomes = _sink(client)
    await sink.write([_event("a"), _event("b")])
    await sink.flush()
    (failure,) = outcomes.failed
    assert failure.event.event_id == "b"
    assert str(failure.error) == "document_parsing_exception: document_parsing_exception for b"
    assert failure.error.retriable is False and outcomes.delivered == ["a"]


async def test_item_still_refused_after_max_attempts_is_dead_lettered_as_retriable() -> None:
    refuse = lambda ids: _items(ids, {"a": (503, "unavailable_shards_exception")})  # noqa: E731
    client = ScriptedClient(refuse, refuse, refuse)
    sink, outcomes = _sink(client, elasticsearch_item_max_attempts=3)
    await sink.write([_event("a")])
    await sink.flush()
    (failure,) = outcomes.failed
    assert failure.attempts == 3 and failure.error.retriable is True
    assert "after 3 attempts" in str(failure.error)


async def test_a_write_block_or_429_is_held_past_the_attempt_limit_never_dead_lettered() -> None:
    # A read-only index (disk watermark) and an overloaded cluster ask to wait: five refusals
    # with an attempt limit of 2, then the cluster takes the documents.
    refuse = lambda ids: _items(ids, {  # noqa: E731
        "a": (403, "cluster_block_exception"), "b": (429, "es_rejected_execution_exception")})
    client = ScriptedClient(*[refuse] * 5)
    sink, outcomes = _sink(client, elasticsearch_item_max_attempts=2)
    await sink.write([_event("a"), _event("b"), _event("c")])
    await sink.flush()
    assert outcomes.failed == []
    assert sorted(outcomes.delivered) == ["a", "b", "c"]
    assert client.requests[1:] == [["a", "b"]] * 5
    assert sink.backpressure.held == 0
    assert sink.holding() == {}


async def test_documents_held_by_backpressure_are_what_the_sink_says_it_holds() -> None:
    # Before the backpressure timeout readiness stays green; `holding` is what keeps the settle
    # watchdog from consuming such records again meanwhile.
    refuse = lambda ids: _items(ids, {"a": (429, "es_rejected_execution_exception")})  # noqa: E731
    client = ScriptedClient(*[refuse] * 10_000)
    sink, _ = _sink(client)
    await sink.write([_event("a")])
    flushing = asyncio.ensure_future(sink.flush())  # sends the batch; waits while it is held
    try:
        for _ in range(500):
            if sink.holding():
                break
            await asyncio.sleep(0.002)
        assert list(sink.holding()) == [("events", 0)]  # the partition of _event's record
        assert "holds back 1 documents" in sink.holding()[("events", 0)]
        assert await sink.check() is None
    finally:
        flushing.cancel()
        await sink.stop()


async def test_backpressure_past_its_timeout_reports_unready_pauses_writes_and_keeps_waiting(
) -> None:
    blocked = True

    def answer(ids: list[str]) -> dict:
        if blocked:
            return _items(ids, {i: (403, "cluster_block_exception") for i in ids})
        return _items(ids)

    client = ScriptedClient(*[answer] * 10_000)
    sink, outcomes = _sink(client, elasticsearch_backpressure_timeout=0.01,
                           elasticsearch_batch_max_events=1,
                           elasticsearch_max_in_flight_requests=1)
    try:
        # Two documents fill the sink's room (1 per batch × (1 request + 1 buffered)): the
        # third write waits, which is what pauses consumption (the pipeline awaits `write`).
        await sink.write([_event("a")])
        writer = asyncio.ensure_future(sink.write([_event("b"), _event("c")]))
        problem = None
        for _ in range(500):
            problem = await sink.check()
            if problem:
                break
            await asyncio.sleep(0.01)
        assert problem and "cluster_block_exception" in problem
        assert "SLUICE_ELASTICSEARCH_BACKPRESSURE_TIMEOUT" in problem
        assert not writer.done() and outcomes.failed == [] and outcomes.delivered == []
        blocked = False
        await asyncio.wait_for(writer, 10)
        await sink.flush()
        assert sorted(outcomes.delivered) == ["a", "b", "c"] and outcomes.failed == []
        assert await sink.check() is None
    finally:
        await sink.stop()


async def test_missing_index_is_explained() -> None:
    client = ScriptedClient(lambda ids: _items(ids, {"a": (404, "index_not_found_exception")}))
    sink, outcomes = _sink(client)
    await sink.write([_event("a")])
    await sink.flush()
    assert "create_index privilege" in str(outcomes.failed[0].error)


async def test_whole_request_failures_are_retried_until_they_succeed() -> None:
    def refuse_connection(ids: list[str]) -> dict:
        raise ConnectionError("connection refused")

    def unavailable(ids: list[str]) -> dict:
        raise _api_error(503)

    client = ScriptedClient(refuse_connection, unavailable, refuse_connection)
    sink, outcomes = _sink(client)
    await sink.write([_event("a")])
    await sink.flush()
    assert outcomes.delivered == ["a"] and len(client.requests) == 4
    assert sink.stats.request_failures == 3


async def test_request_too_large_is_split_in_two() -> None:
    def too_large(ids: list[str]) -> dict:
        raise _api_error(413)

    client = ScriptedClient(too_large)
    sink, outcomes = _sink(client)
    await sink.write([_event(x) for x in "abcd"])
    await sink.flush()
    assert sorted(outcomes.delivered) == ["a", "b", "c", "d"]
    assert sorted(map(tuple, client.requests[1:])) == [("a", "b"), ("c", "d")]


async def test_data_streams_use_create_and_treat_409_as_already_written() -> None:
    conflict = {"a": (409, "version_conflict_engine_exception")}
    client = ScriptedClient(lambda ids: _items(ids, conflict))
    sink, outcomes = _sink(client, elasticsearch_data_stream=True, elasticsearch_index="events")
    await sink.write([_event("a")])
    await sink.flush()
    assert outcomes.delivered == ["a"]
    action, document = sink._encode(_event("a")).splitlines()
    assert orjson.loads(action) == {"create": {"_index": "events", "_id": "a"}}
    assert orjson.loads(document)["@timestamp"] == "2026-11-22T10:00:00.000Z"


async def test_batches_are_cut_by_event_count() -> None:
    client = ScriptedClient()
    sink, outcomes = _sink(client, elasticsearch_batch_max_events=2)
    await sink.write([_event(x) for x in "abcde"])
    await sink.flush()
    assert [len(r) for r in client.requests] == [2, 2, 1]


@pytest.mark.parametrize(
    ("pattern", "timestamp", "name", "glob"),
    [
        ("events-%Y.%m.%d", "2026-11-22T23:59:59.999Z", "events-2026.11.22", "events-*"),
        ("logs-%Y-%m", "2026-01-02T00:00:00.000Z", "logs-2026-01", "logs-*"),
        ("hourly-%Y%m%d%H", "2026-01-02T07:10:00.000Z", "hourly-2026010207", "hourly-*"),
        ("everything", "2026-01-02T07:10:00.000Z", "everything", "everything"),
    ],
)
def test_index_names_follow_the_pattern_of_the_event_time(
    pattern: str, timestamp: str, name: str, glob: str
) -> None:
    assert IndexNamer(pattern)(timestamp) == name
    assert index_glob(pattern) == glob


def test_template_maps_ids_as_keywords_and_times_as_dates() -> None:
    template = index_template("events-%Y.%m.%d", data_stream=False)
    properties = template["template"]["mappings"]["properties"]
    assert template["index_patterns"] == ["events-*"]
    assert properties["event_id"]["type"] == "keyword"
    assert properties["timestamp"] == {"type": "date"}
    # Producer-defined objects: one field each, no mapping explosion, no type conflicts.
    assert {properties[name]["type"] for name in ("context", "properties", "traits")} == {
        "flattened"}
    assert "data_stream" not in template
    assert index_template("events", data_stream=True)["data_stream"] == {}


async def test_the_client_parses_answers_with_orjson() -> None:
    from elasticsearch import OrjsonSerializer

    from worker.sinks.elasticsearch.sink import make_client

    client = make_client(load_settings())
    try:
        serializer = client.transport.serializers.get_serializer("application/json")
        assert isinstance(serializer, OrjsonSerializer)
    finally:
        await client.close()


def test_a_worker_loads_elasticsearch_py_without_pyarrow() -> None:
    # elasticsearch-py imports pyarrow when it is installed (25 MiB per worker, unused unless
    # the S3 format is Parquet): worker.sinks.elasticsearch.loading hides it for that import.
    import subprocess
    import sys

    code = ("import sys, worker.app, worker.cli.main, worker.sinks.elasticsearch.sink\n"
            "assert 'pyarrow' not in sys.modules, 'pyarrow was imported'\n"
            "import pyarrow\n")  # and it is still there for the Parquet format
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


async def test_a_whole_request_refused_with_429_holds_its_documents_as_backpressure() -> None:
    # Elasticsearch's indexing-pressure limit answers the whole bulk request 429: the cluster
    # asks to wait, as with a per-item 429. The documents count as held (metrics, the settle
    # watchdog, the backpressure timeout), not only as a failed request.
    refused = asyncio.Event()
    holding_seen: list[dict] = []

    def too_many(ids: list[str]) -> dict:
        refused.set()
        raise _api_error(429)

    client = ScriptedClient(*[too_many] * 3)
    sink, outcomes = _sink(client)

    async def watch() -> None:
        await refused.wait()
        await asyncio.sleep(0)
        holding_seen.append(sink.holding())

    watcher = asyncio.ensure_future(watch())
    await sink.write([_event("a"), _event("b")])
    await sink.flush()
    await watcher
    assert holding_seen and "holds back 2 documents" in holding_seen[0].get(("events", 0), ""), \
        holding_seen
    assert outcomes.delivered == ["a", "b"] and outcomes.failed == []
    assert sink.holding() == {} and sink.backpressure.held == 0


async def test_the_readiness_check_before_start_and_after_stop_answers_not_started() -> None:
    # A probe may come before the client exists (issue 26: an AssertionError, a 500).
    sink = ElasticsearchSink(Outcomes(), load_settings())  # type: ignore[arg-type]
    assert await sink.check() == NOT_STARTED
    sink._client = ScriptedClient()  # type: ignore[assignment]
    assert await sink.check() is None
    await sink.stop()
    assert await sink.check() == NOT_STARTED
