"""Protocols: pure state machines, found by name.

A protocol is a `protocols.base.Protocol` subclass found one of two ways:

- by name, through the `labctl.protocols` entry-point group of the installed packages
  (`name = "module:Class"` under `[project.entry-points."labctl.protocols"]` in a
  pyproject.toml). The built-ins are registered exactly so, in labctl's own pyproject,
  and a plugin package is registered the same way (docs/adding-a-protocol.md);
- as `module:Class` itself (`labctl up -p mypkg.pb:PrimaryBackup`), importable from the
  environment the lab runs in.

Names are read from package metadata without importing anything, so `labctl --help`
stays instant and one broken protocol cannot hide the others: importing it raises.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the contract is imported with the first protocol, not by the registry
    from protocols.base import Protocol

GROUP = "labctl.protocols"
DIST = "labctl"  # the distribution that registers the built-ins
BUILTINS = ("naive", "raft", "epaxos", "pbft")  # what labctl's own pyproject registers
DEFAULT = "raft"  # what a lab, chaos and explore run without --protocol
SCENARIO_DEFAULT = "naive"  # a scenario file's protocol when it names none
LIGHTEST = "naive"  # does least per request: what benchmarks of the lab itself run


class UnknownProtocol(KeyError):
    """A name that is neither registered nor an importable `module:Class`."""

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(name)
        self.why = why

    def __str__(self) -> str:
        why = f": {self.why}" if self.why else ""
        return f"unknown protocol {self.args[0]!r}{why} (available: {', '.join(available())})"


class StaleMetadata(RuntimeError):
    """labctl's installed package metadata predates the entry points (an old install)."""


@functools.cache
def registry() -> dict[str, str]:
    """Registered name -> "module:Class", the built-ins first (nothing is imported)."""
    found, builtins_seen = _entry_points()
    if not builtins_seen and not all(name in found for name in BUILTINS):
        raise StaleMetadata(
            f"labctl's package metadata registers no protocols (entry-point group {GROUP!r}):"
            " the install predates it; reinstall labctl (pip install -e . in the repository)"
        )
    ordered = {n: found[n] for n in BUILTINS if n in found}
    ordered.update(sorted((n, v) for n, v in found.items() if n not in ordered))
    return ordered


def _entry_points() -> tuple[dict[str, str], bool]:
    """The group's entry points and whether labctl's own distribution registered any.

    Importing importlib.metadata costs 30 ms, a third of a CLI call, so the answer is
    cached in a file keyed by every sys.path directory and its mtime: installing,
    reinstalling or removing a package rewrites a *.dist-info directory there, which
    changes its parent's mtime."""
    import json
    import os
    import sys
    import zlib

    key = []
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    name = f"entry-points-{zlib.crc32(sys.prefix.encode()):08x}.json"
    path = os.path.join(base, "labctl", name)
    try:
        with open(path) as f:
            doc = json.load(f)
        if doc["key"] == key:
            return dict(doc["found"]), bool(doc["builtins_seen"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found, builtins_seen = _scan_entry_points()
    try:  # a cache we cannot write only costs the next call the scan again
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"key": key, "found": found, "builtins_seen": builtins_seen}, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return found, builtins_seen


def _scan_entry_points() -> tuple[dict[str, str], bool]:
    from importlib import metadata

    found: dict[str, str] = {}
    builtins_seen = False
    for ep in metadata.entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
        dist = getattr(ep, "dist", None)
        if dist is not None and dist.metadata["Name"] == DIST:
            builtins_seen = True
    return found, builtins_seen


def available() -> list[str]:
    """Every registered protocol name (none is imported: a broken one raises at `get`)."""
    return list(registry())


def is_known(name: str) -> bool:
    """Registered, or spelled `module:Class` (whether that imports is `get`'s to say)."""
    return name in registry() or _is_spec(name)


def _is_spec(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr)


@functools.cache
def get(name: str) -> type[Protocol]:
    """The protocol class registered as `name`, or named by `module:Class`.

    UnknownProtocol when it is neither; an import error inside a registered protocol's
    own code propagates (a broken protocol is not an unknown one)."""
    from protocols.base import Protocol

    spec = registry().get(name)
    if spec is None:
        if not _is_spec(name):
            raise UnknownProtocol(name)
        spec = name
    module, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if spec != name or e.name is None or not module.startswith(e.name):
            raise  # a registered protocol, or a module that imports what is not there
        raise UnknownProtocol(name, f"no module {module!r}") from None
    cls = getattr(mod, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Protocol)):
        raise UnknownProtocol(name, f"{spec} is not a protocols.base.Protocol subclass")
    return cls


def display_name(name: str) -> str:
    """What to call the protocol `name` names: its class's `name` for a `module:Class`."""
    return get(name).name if _is_spec(name) else name
