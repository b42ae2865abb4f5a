"""Tests of the Elasticsearch sink."""
