"""Durations as users write them: "250ms", "1.5s", "2m", "1h", or plain seconds.

The single parser for the whole lab: CLI flags, scenario files and protocol options all use
it, so "300ms" means the same everywhere.
"""

from __future__ import annotations

import math
import re

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(us|ms|s|m|h)?\s*$")


class DurationError(ValueError):
    pass


def show_value(value: object) -> str:
    """A bad value as an error message shows it: its repr, cut short (a 400-digit number
    is still one line)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: str | float | int) -> float:
    """Seconds as a float. Raises DurationError (a ValueError) with the bad text."""
    if isinstance(value, bool):
        raise DurationError(f"not a duration: {show_value(value)}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        if not math.isfinite(seconds):
            raise DurationError(f"not a finite duration: {show_value(value)}")
        if seconds < 0:
            raise DurationError(f"negative duration: {show_value(value)}")
        return seconds
    if not isinstance(value, str):
        raise DurationError(
            f"not a duration: {show_value(value)} (use a number with a unit: 250ms, 1.5s)"
        )
    m = _PATTERN.match(value)
    if not m:
        raise DurationError(
            f"not a duration: {show_value(value)} (use a number with a unit: 250ms, 1.5s, 2m)"
        )
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not math.isfinite(seconds):  # more digits than a float holds
        raise DurationError(f"not a finite duration: {show_value(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
