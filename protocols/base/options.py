"""Validating a protocol's options from user text (CLI `--opt`, scenario `[options]`).

A protocol declares `Options` as a msgspec Struct whose duration fields are floats in
seconds; users may write those as "300ms". Unknown or badly typed options raise
ConfigError naming the option, before any process starts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocols.base.contract import ConfigError
from protocols.base.durations import DurationError, parse_duration


def decode_options(options_type: type[msgspec.Struct], raw: dict[str, Any]) -> msgspec.Struct:
    fields = {f.name: f for f in msgspec.structs.fields(options_type)}
    clean: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"unknown option {key!r} (known: {known})")
        if fields[name].type is float and isinstance(value, str):
            try:
                value = parse_duration(value)
            except DurationError as e:
                raise ConfigError(f"option {key!r}: {e}") from None
        elif fields[name].type is bool and isinstance(value, str):
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "on", "off", "yes", "no"):
                raise ConfigError(f"option {key!r}: not a boolean: {value!r}")
            value = lowered in ("true", "1", "on", "yes")
        elif fields[name].type is int and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"option {key!r}: not an integer: {value!r}") from None
        clean[name] = value
    try:
        opts = msgspec.convert(clean, options_type)
    except msgspec.ValidationError as e:
        raise ConfigError(f"bad option: {e}") from None
    check = getattr(opts, "validate", None)
    if check is not None:
        check()  # raises ConfigError for cross-field rules (e.g. heartbeat < timeout)
    return opts
