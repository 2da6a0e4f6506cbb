"""Folding the link faults in force into the router's table of directed link rules.

Faults apply in the order they were given, so a later delay on a link overrides an earlier
one, while a partition on a link always drops (the router gives drop precedence).
"""

from __future__ import annotations

from typing import Any

from faults.model import Fault


def directed_links(fault: Fault) -> list[tuple[str, str]]:
    """Every (src, dst) pair a resolved link fault covers."""
    if fault.links:
        return list(fault.links)
    pairs = [(s, d) for s in fault.src for d in fault.dst if s != d]
    if fault.kind == "partition" and not fault.oneway:
        pairs += [(d, s) for s, d in pairs]
    return pairs


def link_table(faults: list[Fault]) -> list[dict[str, Any]]:
    """The wire form of the router's table: [{"src", "dst", "rule": {...}}]."""
    rules: dict[tuple[str, str], dict[str, Any]] = {}
    for f in faults:
        for link in directed_links(f):
            rule = rules.setdefault(link, {})
            if f.kind == "partition":
                rule["drop"] = True
            elif f.kind == "delay":
                rule["delay"] = f.delay
                rule["jitter"] = f.jitter
            elif f.kind == "loss":
                rule["loss"] = f.p
            elif f.kind == "duplicate":
                rule["duplicate"] = f.p
    return [{"src": s, "dst": d, "rule": r} for (s, d), r in sorted(rules.items())]


def split_healed(
    link_faults: list[tuple[int, Fault]], src: set[str] | None, dst: set[str] | None
) -> tuple[list[Fault], list[tuple[int, Fault]]]:
    """A heal's effect on the link faults in force (id, fault): (healed, kept). With no
    `src` and no `dst` everything heals; otherwise a fault heals when it touches a node of
    `src` (if given) and one of `dst` (if given). The supervisor and the simulator both
    heal with this, so a heal means the same in both."""

    def covered(f: Fault) -> bool:
        return (src is None or bool(src & set(f.src))) and (dst is None or bool(dst & set(f.dst)))

    healed = [f for _, f in link_faults if covered(f)]
    return healed, [(i, f) for i, f in link_faults if not covered(f)]
