"""Enrichment: customer and usage-plan fields from the catalog, for events that carry an API key.

Access-log events carry ``api_key_id``. A known key adds ``customer_id``, ``customer_name``,
``usage_plan_id``, ``usage_plan_name`` and ``api_key_name`` and sets ``enriched: true``. An unknown
key is not an error: the event is still delivered, with ``enriched: false``, and counted.
Events without an API key are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from worker.catalog.entries import CatalogEntry

CatalogLookup = Callable[[str], CatalogEntry | None]

_ENRICHMENT_FIELDS = ("customer_id", "customer_name", "usage_plan_id", "usage_plan_name",
                      "api_key_name")


class Enrichment(StrEnum):
    """What enrichment did to one event."""

    ENRICHED = "enriched"
    UNKNOWN_KEY = "unknown_key"
    NOT_APPLICABLE = "not_applicable"


def enrich(document: dict[str, Any], lookup: CatalogLookup) -> Enrichment:
    """Add the catalog's fields for the document's API key, in place."""
    api_key_id = document.get("api_key_id")
    if api_key_id is None:
        if document.get("type") == "access_log":
            # An access log without a key cannot be attributed: say so in the document.
            document["enriched"] = False
            return Enrichment.UNKNOWN_KEY
        return Enrichment.NOT_APPLICABLE
    entry = lookup(api_key_id)
    if entry is None:
        document["enriched"] = False
        return Enrichment.UNKNOWN_KEY
    for name in _ENRICHMENT_FIELDS:
        value = getattr(entry, name)
        if value is not None:
            document[name] = value
    document["enriched"] = True
    return Enrichment.ENRICHED
