"""syncd benchmarks (not part of the test run)."""
