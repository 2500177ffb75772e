"""Smoke tests of the tools beside the package: benchmarks/ and fuzzing/."""
