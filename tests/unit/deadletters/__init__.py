"""Tests of worker.deadletters: the publisher, the limit, inspect and replay."""
