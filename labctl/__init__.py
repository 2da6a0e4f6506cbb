"""labctl: a chaos lab for coordination protocols (supervisor, CLI, run records)."""

__version__ = "0.1.0"
