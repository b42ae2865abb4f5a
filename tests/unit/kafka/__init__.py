"""Tests of worker.kafka, and contract tests that pin the Faust and aiokafka internals it uses."""
