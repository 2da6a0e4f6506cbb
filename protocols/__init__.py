"""Protocols: pure state machines, looked up by name.

The registry maps a protocol's name to where it lives, imported only when asked for, so
`labctl --help` stays instant and a broken protocol cannot break the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the contract is imported with the first protocol, not by the registry
    from protocols.base import Protocol

REGISTRY: dict[str, str] = {
    "naive": "protocols.naive:NaiveProtocol",
    "raft": "protocols.raft:RaftProtocol",
    "epaxos": "protocols.epaxos:EPaxosProtocol",
    "pbft": "protocols.pbft:PbftProtocol",
}


class UnknownProtocol(KeyError):
    def __str__(self) -> str:
        return f"unknown protocol {self.args[0]!r} (available: {', '.join(available())})"


def available() -> list[str]:
    """Names of the protocols whose module imports (a protocol under construction is absent)."""
    names = []
    for name in REGISTRY:
        try:
            get(name)
        except UnknownProtocol:
            continue
        names.append(name)
    return names


def get(name: str) -> type[Protocol]:
    if name not in REGISTRY:
        raise UnknownProtocol(name)
    module, _, attr = REGISTRY[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        # Only a protocol that is not built yet is "unknown"; a broken one raises.
        if e.name != module:
            raise
        raise UnknownProtocol(name) from None
