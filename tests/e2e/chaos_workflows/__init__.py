"""Workflows of the chaos test (tests/e2e/test_chaos.py); registered with `pyflyte register`."""
