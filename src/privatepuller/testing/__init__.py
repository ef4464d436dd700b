"""Fake services (Canvas, Google Drive) for tests, benchmarks and `privatepuller demo`."""
