"""The pipeline: a batch of records decoded, enriched, fanned out to the sinks, acknowledged.

``preparation``: decoding, normalising, enrichment and encoding run over a batch, failures
collected for the dead-letter topic; ``dedupe``: a retry's copy of an event left out of the
sinks (a window of ids per partition); ``routing``: which sinks a record's events go to (all, or
only the failed one for a dead letter's replay); ``wiring``: the events handed to the sinks and
the books kept (tickets, dead letters, recovery); ``acks``: one share per (event, sink),
settled once, and each partition's committable offset; ``progress``: the counters the pipeline
bumps and reports.

Imports: ``worker.config``, ``worker.events``, ``worker.catalog`` (enrichment),
``worker.sinks.base`` (the contract, never a sink's own modules) and ``worker.deadletters``.
Never Kafka: the Faust app (``worker.app``) hands it batches and commits what it settled.
"""
