"""Kafka: where records come from and where Faust is adapted.

Every Kafka client's connection options, TLS and SASL (``connection``); the topics Sluice
creates (``topics``) and a group's committed offsets (``group_offsets``); Faust's consumer
adapted (``faust_consumer``: group membership kept through commit errors, complete seeks), the
source topic read in batches with commits from settled offsets (``faust_batches``,
``faust_batch_agent``), empty fetches paced (``fetch_pacing``).

Imports: ``worker.config`` and ``worker.events`` (the records a batch carries). Never a sink,
the pipeline or the CLI: the Faust app (``worker.app``) wires these to the pipeline.
"""
