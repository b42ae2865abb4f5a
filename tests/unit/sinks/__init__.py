"""Tests of worker.sinks."""
