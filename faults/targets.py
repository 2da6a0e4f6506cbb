"""Resolving fault targets: names and roles to the concrete endpoints they mean right now.

Roles are resolved when the fault fires, from the latest telemetry: "leader" is the node
that claims leadership in the highest term (with two claimants in one term, the lower id,
so a rerun with the same seed picks the same node), "followers" every other replica. Which
role names claim leadership is the protocol's to say (`Protocol.roles`, handed in as its
`Display`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from faults.model import ROLES, FaultError
from protocols.display import Display


def current_leader(
    replicas: list[str], status: dict[str, dict[str, Any]], display: Display
) -> str | None:
    claimants = [
        (-(status.get(r, {}).get("term") or 0), r)
        for r in replicas
        if display.leads(status.get(r, {}).get("role"))
    ]
    return min(claimants)[1] if claimants else None


def resolve(
    names: Iterable[str],
    *,
    replicas: list[str],
    endpoints: set[str],
    status: dict[str, dict[str, Any]],
    rng: random.Random,
    display: Display,
) -> list[str]:
    """Concrete endpoint names for `names`; FaultError naming the first unknown one."""
    out: list[str] = []
    for name in names:
        if name in endpoints:
            resolved = [name]
        elif name in ROLES:
            resolved = _role(name, replicas, status, rng, display)
        else:
            known = ", ".join(sorted(e for e in endpoints if not e.startswith("c")))
            raise FaultError(
                f"unknown node {name!r} (known: {known}, c0..c15; "
                f"roles: {', '.join(sorted(ROLES))})"
            )
        out.extend(r for r in resolved if r not in out)
    return out


def _role(
    role: str,
    replicas: list[str],
    status: dict[str, dict[str, Any]],
    rng: random.Random,
    display: Display,
) -> list[str]:
    if role == "all":
        return list(replicas)
    if role in ("leader", "primary"):
        leader = _leader_or_stand_in(replicas, status, display)
        if leader is None:
            raise FaultError(f"no node is {role} right now")
        return [leader]
    if role == "followers":
        leader = _leader_or_stand_in(replicas, status, display)
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


def _leader_or_stand_in(
    replicas: list[str], status: dict[str, dict[str, Any]], display: Display
) -> str | None:
    """The current leader; in a leaderless protocol (EPaxos: no role leads) any replica
    leads the commands it receives, so "leader" is the first replica in one of the
    protocol's roles (a running one) and "followers" the others: a scenario written for
    Raft still cuts, pauses and kills."""
    if not display.leaderless:
        return current_leader(replicas, status, display)
    running = [r for r in replicas if display.role(status.get(r, {}).get("role")) is not None]
    return running[0] if running else None
