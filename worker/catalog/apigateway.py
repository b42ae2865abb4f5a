"""Reading the catalog from AWS API Gateway: usage plans, their API keys, and the keys' names.

This is what seed 003's enrichment Lambda loads at start, turned into catalog entries: one per
API key that belongs to a usage plan (``usage_plan_id`` / ``usage_plan_name``), with the key's
name as ``api_key_name`` and ``customer_name`` and its ``customerId`` (the AWS Marketplace
customer, if any) as ``customer_id``. A key in several usage plans gets the first plan by name.

What can go wrong is said in one sentence (``ApiGatewayError``), never a botocore traceback:
no region, no credentials, an endpoint that is no URL (``ApiGatewaySettingError``: the caller's
arguments or AWS configuration), an endpoint that does not answer, or API Gateway refusing the
call (its error code and message, and the permissions the sync needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from worker.catalog.entries import CatalogEntry
from worker.config import redact_url
from worker.config.urls import check_http_url

# What `read_apigateway_catalog` calls: the permissions a sync needs.
PERMISSIONS = "apigateway:GET on /apikeys, /usageplans and /usageplans/*/keys"


class ApiGatewayError(Exception):
    """Reading API Gateway failed; the message says what to check, in one line."""


class ApiGatewaySettingError(ApiGatewayError):
    """The region, the credentials or the endpoint are missing or malformed: nothing was
    called."""


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
    """Catalog entries for every API key in a usage plan; ApiGatewayError (or its
    ApiGatewaySettingError) saying what to check if API Gateway cannot be read."""
    if target.endpoint_url:
        try:
            check_http_url(target.endpoint_url)
        except ValueError as error:
            raise ApiGatewaySettingError(
                f"--endpoint-url {redact_url(target.endpoint_url)!r}: {error}") from None
    try:
        return await _read(target)
    except (NoRegionError, NoCredentialsError, PartialCredentialsError) as error:
        raise ApiGatewaySettingError(_explain(error, target)) from None
    except (BotoCoreError, ClientError) as error:
        raise ApiGatewayError(_explain(error, target)) from None


def _explain(error: Exception, target: AwsTarget) -> str:
    """One line for a person: what failed and what to check."""
    where = redact_url(target.endpoint_url) if target.endpoint_url else "AWS API Gateway"
    if isinstance(error, NoRegionError):
        return ("no AWS region for API Gateway: pass --region (e.g. --region eu-west-1), or set "
                "AWS_REGION / AWS_DEFAULT_REGION or `region` in the AWS config file")
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return (f"no AWS credentials for API Gateway ({error}): set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available (IRSA, an "
                "instance profile)")
    if isinstance(error, EndpointConnectionError):
        return (f"cannot reach {where} ({error}): check --endpoint-url or --region, the "
                "network and any proxy")
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or "error"
        message = details.get("Message") or str(error)
        operation = getattr(error, "operation_name", "a call")
        return (f"{where} refused {operation}: {code}: {message}. Check the AWS credentials "
                f"and that they allow {PERMISSIONS}")
    return f"calling {where} failed ({type(error).__name__}: {error})"


async def _read(target: AwsTarget) -> list[CatalogEntry]:
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
