"""Operator tests use the fixtures of tests/conftest.py (shared with the reliability suite)."""
