"""Operations: what a running process shows and checks.

``metrics``: Prometheus families read from the pipeline's, the sinks' and the catalog's own
counters at scrape time; ``server``: the small HTTP server of ``/metrics`` and ``/health/*``
(the worker's and ``sluice ingest``'s); ``logs``: text or JSON log lines; ``startup_checks``:
what must hold before a worker joins its group, each failure one line naming the setting;
``gc_tuning``: collections made rare for a worker's large live set.

Imports: anything below the Faust app (config, events, kafka, catalog, sinks, dead letters,
the pipeline), to read their state. Never the app, ingest, the CLI or the local stack.
"""
