"""Invariants over several EPaxos replicas, for tests: the decided attributes agree.

EPaxos's safety rests on one fact: every replica that commits an instance commits the same
command with the same seq and deps (its execution order then follows). These helpers read
the replicas' instance spaces and return readable problems (an empty list: all held).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocols.epaxos.core import EPaxosProtocol
from protocols.epaxos.messages import COMMITTED, InstanceState


def committed_attributes(replicas: Mapping[str, EPaxosProtocol]) -> list[str]:
    """Instances committed at two replicas with different commands, seq or deps."""
    seen: dict[tuple[int, int], tuple[str, Any]] = {}
    problems = []
    for name, p in replicas.items():
        for iid, inst in p.instances.items():
            if inst.status != COMMITTED:
                continue
            attrs = (inst.cmds, inst.seq, inst.deps)
            first = seen.setdefault(iid, (name, attrs))
            if first[1] != attrs:
                problems.append(
                    f"instance {iid}: {first[0]} committed {first[1]}, {name} committed {attrs}"
                )
    return problems


def committed_on_disk(disks: Mapping[str, list[Any]]) -> list[str]:
    """The same check over persisted records (crashed replicas included): the last
    committed record of each instance must agree everywhere."""
    seen: dict[tuple[int, int], tuple[str, Any]] = {}
    problems = []
    for name, records in disks.items():
        for r in records:
            if not isinstance(r, InstanceState) or r.status != COMMITTED:
                continue
            attrs = (r.cmds, r.seq, r.deps)
            first = seen.setdefault((r.replica, r.inum), (name, attrs))
            if first[1] != attrs:
                problems.append(
                    f"instance {(r.replica, r.inum)}: {first[0]} committed {first[1]},"
                    f" {name} committed {attrs}"
                )
    return problems
