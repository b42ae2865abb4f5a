"""Tests of worker.catalog.entries: entries, the API Gateway sync, enrichment."""
