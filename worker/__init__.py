"""Sluice: Kafka in; decoded, enriched events out to Elasticsearch and hourly gzip files on S3."""

__version__ = "0.1.0"
