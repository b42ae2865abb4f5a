"""Sinks: where delivered events go.

``base`` is the contract every sink obeys; ``counting`` is the sink of tests and the demo; each
real sink is a package whose files are named by role alike (``sink``, ``client``, ``triage``,
``naming``, …): ``elasticsearch/`` and ``s3/``.

Imports: ``worker.config`` and ``worker.events``. A sink never imports Kafka, the catalog, the
pipeline, dead-letter tooling, ingest, the CLI or the local stack: the pipeline hands it events
and reads its outcomes.
"""

from worker.sinks.elasticsearch.loading import import_elasticsearch

# Before any sink module imports elasticsearch-py (see worker.sinks.elasticsearch.loading).
import_elasticsearch()
