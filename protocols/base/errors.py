"""The error protocols raise when they are misconfigured: shared by the contract, the
options validator and the mutation catalogue (so none of them imports another for it)."""

from __future__ import annotations


class ConfigError(ValueError):
    """Protocol options that do not validate; the message names the option."""
