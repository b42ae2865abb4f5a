"""The tests' Elasticsearch reads refuse partial answers (tests/support/es_reads.py)."""

from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.es_reads import PartialAnswer, count, from_every_shard, require_keyword, search

# What Elasticsearch answers (200) to a search of `events-*` sorted on `event_id` when one index
# maps `event_id` as text: the other index's hits, and the failed shard counted with its reason.
PARTIAL_SEARCH = {
    "took": 3, "timed_out": False,
    "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1, "failures": [{
        "shard": 0, "index": "events-fixed", "node": "n1",
        "reason": {"type": "illegal_argument_exception",
                   "reason": "Text fields are not optimised for operations that require "
                             "per-document field data like aggregations and sorting"}}]},
    "hits": {"total": {"value": 1, "relation": "eq"},
             "hits": [{"_index": "events-2026.01.01", "_id": "priced",
                       "_source": {"event_id": "priced"}, "sort": ["priced"]}]},
}
WHOLE_SEARCH = {**PARTIAL_SEARCH,
                "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0}}


class _Answer:
    """An answer as the client returns it: the JSON under `.body`."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body


class _Client:
    def __init__(self, search: dict | None = None, count: dict | None = None,
                 mappings: dict | None = None) -> None:
        self._search, self._count = search, count
        self.indices = SimpleNamespace(get_mapping=self._get_mapping)
        self._mappings = mappings or {}

    async def search(self, **options: Any) -> _Answer:
        return _Answer(self._search or {})

    async def count(self, **options: Any) -> _Answer:
        return _Answer(self._count or {})

    async def _get_mapping(self, index: str) -> _Answer:
        return _Answer(self._mappings)


def test_an_answer_from_every_shard_is_returned_as_it_is() -> None:
    assert from_every_shard(_Answer(WHOLE_SEARCH), "search") == WHOLE_SEARCH
    assert from_every_shard({"acknowledged": True}, "put") == {"acknowledged": True}


def test_a_failed_shard_fails_the_read_with_the_index_and_the_reason() -> None:
    with pytest.raises(PartialAnswer) as failure:
        from_every_shard(_Answer(PARTIAL_SEARCH), "search of events-*")
    message = str(failure.value)
    assert "search of events-*: 1 of 2 shards failed" in message
    assert "events-fixed[0] illegal_argument_exception: Text fields" in message


def test_a_timed_out_answer_is_partial_too() -> None:
    with pytest.raises(PartialAnswer, match="timed out"):
        from_every_shard({**WHOLE_SEARCH, "timed_out": True}, "search")


async def test_search_and_count_refuse_partial_answers() -> None:
    assert (await search(_Client(search=WHOLE_SEARCH), "events-*"))["hits"]["hits"]
    with pytest.raises(PartialAnswer):
        await search(_Client(search=PARTIAL_SEARCH), "events-*")  # type: ignore[arg-type]
    shards = {"total": 3, "successful": 2, "failed": 1, "failures": []}
    with pytest.raises(PartialAnswer, match="count of events-\\*: 1 of 3 shards failed"):
        await count(_Client(count={"count": 7, "_shards": shards}), "events-*")  # type: ignore[arg-type]
    assert await count(_Client(count={"count": 7, "_shards": {**shards, "failed": 0}}),  # type: ignore[arg-type]
                       "events-*") == 7


async def test_sorting_needs_a_keyword_in_every_index_read() -> None:
    # The local ES-API server sorts a `text` field across indices without failing a shard:
    # the books check the mapping themselves, as Elasticsearch would.
    mappings = {
        "events-2026.01.01": {"mappings": {"properties": {"event_id": {"type": "keyword"}}}},
        "events-fixed": {"mappings": {"properties": {"event_id": {
            "type": "text", "fields": {"keyword": {"type": "keyword"}}}}}},
        "events-empty": {"mappings": {}},
    }
    with pytest.raises(AssertionError, match="event_id is not a keyword in {'events-fixed'"):
        await require_keyword(_Client(mappings=mappings), "events-*", "event_id")  # type: ignore[arg-type]
    del mappings["events-fixed"]
    await require_keyword(_Client(mappings=mappings), "events-*", "event_id")  # type: ignore[arg-type]
