"""Tests of the S3 sink."""
