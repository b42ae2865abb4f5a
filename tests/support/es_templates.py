"""A template of the user's own, for tests that need Elasticsearch to reject a document.

Sluice's template maps `properties` as `flattened`, so a property's type can no longer conflict.
A user who wants a typed property manages the template (SLUICE_ELASTICSEARCH_INSTALL_TEMPLATE=
false): these tests do the same, with `properties.<field>` a long in the dated indices.
"""

from __future__ import annotations

import copy

from worker.config import Settings
from worker.sinks.elasticsearch.client import make_client
from worker.sinks.elasticsearch.naming import index_template


async def install_typed_properties_template(settings: Settings, field: str) -> Settings:
    """Install a template where `properties.<field>` is a long in the dated indices (those
    starting with a year: `<prefix>2*`), and return the settings that leave it alone."""
    body = copy.deepcopy(index_template(settings.elasticsearch_index, data_stream=False))
    body["index_patterns"] = [settings.elasticsearch_index.split("%")[0] + "2*"]
    body["template"]["mappings"]["properties"]["properties"] = {
        "type": "object", "dynamic": True, "properties": {field: {"type": "long"}}}
    es = make_client(settings)
    try:
        await es.indices.put_index_template(name=f"{settings.elasticsearch_template_name}-typed",
                                            **body)
    finally:
        await es.close()
    return settings.model_copy(update={"elasticsearch_install_template": False})
