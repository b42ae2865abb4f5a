"""Tests of worker.ops: logs, GC tuning, start-up checks."""
