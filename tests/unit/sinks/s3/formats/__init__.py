"""Tests of the S3 sink's object formats."""
