"""Developer tooling: the local stack, the demo, sample traffic and ``sluice produce``.

``stack`` and ``servers``: real servers on loopback (a Kafka-protocol broker with an Elasticsearch
API, SeaweedFS for S3, PostgreSQL for the Iceberg catalog: ``postgres``), started and stopped by
``sluice stack``; ``demo``: the main job end to end (``make demo``); ``samples``: sample events of
every input form; ``produce``: records from a file or synthetic ones onto the source topic.

Nothing a worker needs at run time lives here. Only the CLI imports this package (an
import-linter contract checks it).
"""
