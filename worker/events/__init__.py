"""Events: the document model in one place.

The plain records that move between steps and every failure's class (``records``,
``errors``); how a record's bytes become events (``decoding``; CloudWatch Logs records opened
by ``cloudwatch``), what `sluice ingest` recorded in a record's headers (``ingest_headers``) and
what Segment's servers add to a tracking API event (``tracking``), and one document shape
(``normalize``, reading each field as ``field_values`` says; ``typed_forms`` makes the same
documents of the common shapes in one tight pass); which time files an event (``event_time``);
the same documents as Parquet columns (``parquet_schema``).

Imports: ``worker.config`` only. No Kafka client, no sink, no I/O: everything here is a pure
function of a record and the settings, so every other step can build on it.
"""
