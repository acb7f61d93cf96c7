"""Benchmarks: harmony-dimse measured against peers in the same run, reported as ratios."""
