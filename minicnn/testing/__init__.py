"""Helpers for testing layers: hypothesis strategies in ``minicnn.testing.strategies``."""
