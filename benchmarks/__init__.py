"""privatepuller's benchmarks (issue #6): `python -m benchmarks --help`."""
