"""The catalog: the customer and usage plan of each API key, and what it adds to events.

Catalog entries, read from files and published to the catalog topic (``entries``); the same
from AWS API Gateway's usage plans and keys (``apigateway``); the whole catalog as a worker
keeps it, read from the compacted topic and updated live (``table``); the customer and
usage-plan fields an event gets from it (``enrichment``).

Imports: ``worker.config``, ``worker.events`` and ``worker.kafka`` (to read and write the
catalog topic). Never a sink, the pipeline or the CLI.
"""
