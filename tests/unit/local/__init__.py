"""Tests of worker.local: the stack's process handling, the samples."""
