"""The S3 archive sink, one file per role (the same roles as ``sinks.elasticsearch``).

* ``sink``: the sink's loop: parts per partition, exactly once; its guarantees and knobs are
  in its docstring;
* ``client``: the client and the start-up bucket check;
* ``triage``: which S3 errors pause the sink and which dead-letter;
* ``naming``: key templates rendered per event, object, staging and marker names;
* ``objects``: S3 object calls with their retry rules, and ``concurrency``: a flush's requests
  side by side within a budget;
* ``filing``: which open part an event goes to, and the counts that bound them;
* ``closing``: when parts are due (hours closed by stream time);
* ``publication`` and ``markers``: staging, the marker's commit point, claims of a new owner;
* ``hourly``, ``hour_parts``, ``merge``, ``building`` and ``parking``: SLUICE_S3_PUBLISH=hourly,
  a partition's hour merged into objects (the merger; which hour parts are due and merge
  together; merging files; building an object from its parts; merges that cannot be built);
* ``spool``: the local directory parts are written to before upload;
* ``formats/``: the object formats behind one part interface (gzip NDJSON and CSV lines,
  Parquet) and the gzip compression they use.

Imports: ``worker.config``, ``worker.events`` and ``worker.sinks.base``. Never the
Elasticsearch sink, Kafka, the pipeline, ingest, the CLI or the local stack.
"""
