"""Tests of worker.ingest: the forms and the HTTP server."""
