"""Tests of worker.events: decoding, normalising, event times, the Parquet schema."""
