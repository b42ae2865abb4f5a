"""``sluice report``: a self-contained HTML usage report of a time range, from the S3 archive
(through DuckDB) and the dead-letter topic.

``panels``: every panel defined once, as SQL over the archive's columns and as the fields and
metric an Elasticsearch / Kibana panel uses (the saved-object generator reads the same
records); ``window``: the range and the charts' time bucket; ``archive``: the objects of the
range; ``fetch``: their bytes, one GET each, many at a time; ``scan``: DuckDB loading their
documents once into the table every panel queries; ``letters``: the range's dead letters;
``charts``: Vega-Lite specifications drawn to SVG at build time; ``page``: the HTML file;
``build``: the steps in order.

Imports: ``worker.config``, ``worker.deadletters`` (reading the topic) and ``worker.sinks.s3``
(its client). Nothing imports this package but the CLI, and ``worker.kibana`` its ``panels``
(import-linter contracts check it).
Needs the ``report`` extra (DuckDB, vl-convert).
"""
