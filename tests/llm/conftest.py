"""Fixtures of the LLM-layer tests."""
