"""Reading the catalog from AWS API Gateway: usage plans, their API keys, and the keys' names.

This is what seed 003's enrichment Lambda loads at start, turned into catalog entries: one per
API key that belongs to a usage plan (``usage_plan_id`` / ``usage_plan_name``), with the key's
name as ``api_key_name`` and ``customer_name`` and its ``customerId`` (the AWS Marketplace
customer, if any) as ``customer_id``. A key in several usage plans gets the first plan by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session

from worker.catalog.entries import CatalogEntry


@dataclass(frozen=True)
class AwsTarget:
    """Where and as whom to call AWS; None means the standard AWS configuration chain."""

    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


async def _all_items(client: Any, operation: str, **arguments: Any) -> list[dict[str, Any]]:
    paginator = client.get_paginator(operation)
    items: list[dict[str, Any]] = []
    async for page in paginator.paginate(**arguments):
        items.extend(page.get("items", []))
    return items


async def read_apigateway_catalog(target: AwsTarget) -> list[CatalogEntry]:
    """Catalog entries for every API key in a usage plan."""
    session = get_session()
    async with session.create_client(
        "apigateway",
        region_name=target.region,
        endpoint_url=target.endpoint_url,
        aws_access_key_id=target.access_key_id,
        aws_secret_access_key=target.secret_access_key,
    ) as client:
        keys = {key["id"]: key for key in await _all_items(client, "get_api_keys")}
        plans = sorted(await _all_items(client, "get_usage_plans"), key=lambda p: p.get("name", ""))
        entries: dict[str, CatalogEntry] = {}
        for plan in plans:
            for plan_key in await _all_items(client, "get_usage_plan_keys", usagePlanId=plan["id"]):
                key_id = plan_key["id"]
                if key_id in entries:
                    continue
                key = keys.get(key_id, {})
                name = key.get("name") or plan_key.get("name")
                entries[key_id] = CatalogEntry(
                    api_key_id=key_id,
                    api_key_name=name,
                    customer_name=name,
                    customer_id=key.get("customerId"),
                    usage_plan_id=plan["id"],
                    usage_plan_name=plan.get("name"),
                )
        return list(entries.values())
