"""Resolving fault targets: names and roles to the concrete endpoints they mean right now.

Roles are resolved when the fault fires, from the latest telemetry: "leader" is the node
that claims leadership in the highest term (with two claimants in one term, the lower id,
so a rerun with the same seed picks the same node), "followers" every other replica.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from faults.model import ROLES, FaultError


def current_leader(replicas: list[str], status: dict[str, dict[str, Any]]) -> str | None:
    claimants = [
        (-(status.get(r, {}).get("term") or 0), r)
        for r in replicas
        if status.get(r, {}).get("role") in ("leader", "primary")
    ]
    return min(claimants)[1] if claimants else None


def resolve(
    names: Iterable[str],
    *,
    replicas: list[str],
    endpoints: set[str],
    status: dict[str, dict[str, Any]],
    rng: random.Random,
) -> list[str]:
    """Concrete endpoint names for `names`; FaultError naming the first unknown one."""
    out: list[str] = []
    for name in names:
        if name in endpoints:
            resolved = [name]
        elif name in ROLES:
            resolved = _role(name, replicas, status, rng)
        else:
            known = ", ".join(sorted(e for e in endpoints if not e.startswith("c")))
            raise FaultError(
                f"unknown node {name!r} (known: {known}, c0..c15; "
                f"roles: {', '.join(sorted(ROLES))})"
            )
        out.extend(r for r in resolved if r not in out)
    return out


def _role(
    role: str, replicas: list[str], status: dict[str, dict[str, Any]], rng: random.Random
) -> list[str]:
    if role == "all":
        return list(replicas)
    if role in ("leader", "primary"):
        leader = current_leader(replicas, status) or _leaderless_stand_in(replicas, status)
        if leader is None:
            raise FaultError(f"no node is {role} right now")
        return [leader]
    if role == "followers":
        leader = current_leader(replicas, status) or _leaderless_stand_in(replicas, status)
        return [r for r in replicas if r != leader]
    if role == "random":
        return [rng.choice(replicas)]
    shuffled = sorted(replicas)
    rng.shuffle(shuffled)
    majority = len(replicas) // 2 + 1
    if role == "majority":
        return sorted(shuffled[:majority])
    if role == "minority":
        return sorted(shuffled[: len(replicas) - majority])
    raise FaultError(f"unknown role {role!r}")


def _leaderless_stand_in(replicas: list[str], status: dict[str, dict[str, Any]]) -> str | None:
    """In a leaderless protocol (EPaxos: every replica reports role "replica") any replica
    leads the commands it receives, so "leader" is the first running replica and
    "followers" the others: a scenario written for Raft still cuts, pauses and kills."""
    running = [r for r in replicas if status.get(r, {}).get("role") == "replica"]
    if not running or any(status.get(r, {}).get("role") not in ("replica", None, "down")
                          for r in replicas):  # fmt: skip
        return None
    return running[0]
