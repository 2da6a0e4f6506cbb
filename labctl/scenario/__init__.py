"""Scenarios: the file format, the built-in library and the runner."""
