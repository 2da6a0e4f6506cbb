"""Durations as users write them: "250ms", "1.5s", "2m", "1h", or plain seconds.

The single parser for the whole lab: CLI flags, scenario files and protocol options all use
it, so "300ms" means the same everywhere.
"""

from __future__ import annotations

import re

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(us|ms|s|m|h)?\s*$")


class DurationError(ValueError):
    pass


def parse_duration(value: str | float | int) -> float:
    """Seconds as a float. Raises DurationError (a ValueError) with the bad text."""
    if isinstance(value, bool):
        raise DurationError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise DurationError(f"negative duration: {value!r}")
        return float(value)
    m = _PATTERN.match(value)
    if not m:
        raise DurationError(
            f"not a duration: {value!r} (use a number with a unit: 250ms, 1.5s, 2m)"
        )
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
