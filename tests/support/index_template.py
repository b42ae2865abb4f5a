"""The fields Sluice's index template maps (deploy/elasticsearch/index-template.json), for tests
that check what Kibana's saved objects and the report's Painless scripts read."""

from __future__ import annotations

import json
from typing import Any

from tests.support.paths import REPO_ROOT

TEMPLATE = REPO_ROOT / "deploy" / "elasticsearch" / "index-template.json"


def mapped_properties() -> dict[str, Any]:
    """The template's top-level ``properties``."""
    return json.loads(TEMPLATE.read_text())["template"]["mappings"]["properties"]


def mapped_type(name: str) -> str | None:
    """The type the template gives a dotted field name (``status``, ``kafka.topic``, a key inside
    a ``flattened`` field such as ``context.page.path``: ``flattened``), or None if unmapped."""
    properties = mapped_properties()
    parts = name.split(".")
    for depth, part in enumerate(parts):
        spec = properties.get(part)
        if spec is None:
            return None
        kind = spec.get("type", "object")
        if kind == "flattened" or depth == len(parts) - 1:
            return kind
        properties = {**spec.get("properties", {}), **spec.get("fields", {})}
    return None
