"""Sinks: where delivered events go. Each module is one sink; ``base`` is the contract."""

from worker.sinks.elasticsearch_import import import_elasticsearch

# Before any sink module imports elasticsearch-py (see worker.sinks.elasticsearch_import).
import_elasticsearch()
