"""Tests of worker.pipeline.wiring: preparation, routing, settlement, acknowledgements."""
