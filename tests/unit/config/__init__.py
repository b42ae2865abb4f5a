"""Tests of worker.config: the settings model and its checks."""
