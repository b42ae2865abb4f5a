"""The documents an end-to-end run left in Elasticsearch and S3 (whole, not only their ids)."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from elasticsearch import AsyncElasticsearch

from worker.config import Settings
from worker.sinks.s3.sink import make_client_context


async def elasticsearch_documents(settings: Settings) -> list[dict[str, Any]]:
    """Every document in the settings' indices."""
    es = AsyncElasticsearch(settings.elasticsearch_url)
    pattern = settings.elasticsearch_index.split("%")[0] + "*"
    documents: list[dict[str, Any]] = []
    try:
        await es.indices.refresh(index=pattern)
        after: list | None = None
        while True:
            page = await es.search(index=pattern, size=5000, sort=[{"event_id": "asc"}],
                                   **({"search_after": after} if after else {}))
            assert not page["_shards"].get("failed"), page["_shards"]
            hits = page["hits"]["hits"]
            if not hits:
                return documents
            documents.extend(hit["_source"] for hit in hits)
            after = hits[-1]["sort"]
    finally:
        await es.close()


async def s3_documents(settings: Settings) -> list[dict[str, Any]]:
    """Every document of every part object in the settings' bucket (gzip NDJSON)."""
    documents: list[dict[str, Any]] = []
    async with make_client_context(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=settings.s3_bucket,
                                             Prefix=settings.s3_prefix + "year="):
            for item in page.get("Contents", []):
                response = await client.get_object(Bucket=settings.s3_bucket, Key=item["Key"])
                async with response["Body"] as body:
                    lines = gzip.decompress(await body.read()).splitlines()
                documents.extend(orjson.loads(line) for line in lines)
    return documents


def by_id(documents: list[dict[str, Any]], where: str) -> dict[str, dict[str, Any]]:
    """The documents by event id; fails if an id is there more than once."""
    found: dict[str, dict[str, Any]] = {}
    for document in documents:
        assert document["event_id"] not in found, f"{where}: {document['event_id']} twice"
        found[document["event_id"]] = document
    return found
