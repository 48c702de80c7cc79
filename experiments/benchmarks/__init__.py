"""Benchmarks: each prints a table of ratios against a reference run in the same process."""
