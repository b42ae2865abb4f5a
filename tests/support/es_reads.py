"""Reading Elasticsearch in the tests: an answer counts only if every shard gave it.

Elasticsearch answers a search over several indices with 200 even when some of their shards
failed: a sort on a field that one index maps as `text`, a query one mapping cannot run. The
failures are counted in ``_shards.failed`` and the hits are those of the shards that succeeded.
A test that reads such a partial answer reports as lost what it simply did not read. Every read
of the tests goes through this module, which fails on any failed shard, naming the reasons.

The local ES-API server is more lenient than Elasticsearch here: it sorts a `text` field across
indices without failing a shard. ``event_ids`` therefore also checks, before it sorts on
``event_id``, that every index it reads maps it as a keyword, as Elasticsearch would need.

The client is built from the settings exactly as the worker builds its own (URL or cloud id,
API key or user and password, CA), so the same reads work against a real cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from elasticsearch import AsyncElasticsearch

from worker.config import Settings
from worker.sinks.elasticsearch.client import make_client

PAGE_SIZE = 5000


class PartialAnswer(AssertionError):
    """Elasticsearch answered, but not from every shard: the answer cannot be trusted."""


def from_every_shard(answer: Any, what: str) -> dict[str, Any]:
    """The body of `answer`, after checking that no shard failed and nothing timed out."""
    body: Mapping[str, Any] = getattr(answer, "body", answer)
    shards = body.get("_shards") or {}
    failed = int(shards.get("failed") or 0)
    if failed or body.get("timed_out"):
        reasons = "; ".join(_failure(f) for f in shards.get("failures") or []) or "no reasons"
        timed_out = " and timed out" if body.get("timed_out") else ""
        raise PartialAnswer(
            f"{what}: {failed} of {shards.get('total', '?')} shards failed{timed_out} "
            f"({reasons}); the hits are only those of the other shards")
    return dict(body)


def _failure(failure: Mapping[str, Any]) -> str:
    reason = failure.get("reason") or {}
    if isinstance(reason, Mapping):
        reason = f"{reason.get('type', '?')}: {reason.get('reason', '')}"
    return f"{failure.get('index', '?')}[{failure.get('shard', '?')}] {reason}"


def client(settings: Settings) -> AsyncElasticsearch:
    """A client for the settings' cluster, with the worker's own connection options."""
    return make_client(settings)


def index_glob(settings: Settings) -> str:
    """Every index the settings' pattern makes: `events-%Y.%m.%d` -> `events-*`."""
    return settings.elasticsearch_index.split("%")[0] + "*"


async def refresh(es: AsyncElasticsearch, index: str) -> None:
    """Make everything indexed so far searchable, on every shard."""
    from_every_shard(await es.indices.refresh(index=index), f"refresh of {index}")


async def search(es: AsyncElasticsearch, index: str, **options: Any) -> dict[str, Any]:
    """A search whose hits come from every shard of `index`."""
    return from_every_shard(await es.search(index=index, **options), f"search of {index}")


async def count(es: AsyncElasticsearch, index: str, **options: Any) -> int:
    """A count over every shard of `index`."""
    body = from_every_shard(await es.count(index=index, **options), f"count of {index}")
    return int(body["count"])


async def require_keyword(es: AsyncElasticsearch, index: str, field: str) -> None:
    """Fail unless every index of `index` that maps the top-level `field` maps it as a keyword
    (what sorting on it needs: Elasticsearch fails the shard of an index where it is `text`)."""
    mappings = (await es.indices.get_mapping(index=index)).body
    wrong = {name: spec["mappings"].get("properties", {})[field].get("type")
             for name, spec in mappings.items()
             if field in spec["mappings"].get("properties", {})
             and spec["mappings"]["properties"][field].get("type") != "keyword"}
    assert not wrong, (
        f"{field} is not a keyword in {wrong}: Elasticsearch cannot sort on it there and would "
        "leave those indices' shards out of the answer (does the index match a template?)")


async def event_ids(settings: Settings) -> Counter[str]:
    """How many documents each event id has across the settings' indices (every shard read)."""
    pattern = index_glob(settings)
    ids: Counter[str] = Counter()
    es = client(settings)
    try:
        await refresh(es, pattern)
        await require_keyword(es, pattern, "event_id")
        after: list | None = None
        while True:
            page = await search(es, pattern, size=PAGE_SIZE, source=["event_id"],
                                sort=[{"event_id": {"order": "asc", "unmapped_type": "keyword"}}],
                                **({"search_after": after} if after else {}))
            hits = page["hits"]["hits"]
            if not hits:
                return ids
            ids.update(hit["_source"]["event_id"] for hit in hits)
            after = hits[-1]["sort"]
    finally:
        await es.close()
