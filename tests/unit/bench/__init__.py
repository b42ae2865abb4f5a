"""Tests of the benchmark's report (bench/)."""
