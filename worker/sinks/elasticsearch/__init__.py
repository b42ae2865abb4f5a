"""The Elasticsearch sink, one file per role (the same roles as ``worker.sinks.s3``).

* ``sink``: the sink's loop: bulk batches, idempotent ids, per-item retries, dead letters; its
  guarantees and knobs are in its docstring;
* ``client``: the client and the start-up check (credentials, TLS, the index template);
* ``triage``: what an error answer says, and the rejection a document is dead-lettered with;
* ``backpressure``: which answers mean "wait", and for how long;
* ``naming``: daily index names from the event time, and the index template;
* ``loading``: elasticsearch-py imported without pyarrow.

Imports: ``worker.config``, ``worker.events`` and ``worker.sinks.base``. Never the S3 sink,
Kafka, the pipeline, ingest, the CLI or the local stack.
"""
