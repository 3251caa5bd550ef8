"""Timing comparisons of the engine against hand-written numpy (run: python -m benchmarks)."""
