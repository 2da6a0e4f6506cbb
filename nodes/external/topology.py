"""Broadcast topologies (Maelstrom's `--topology`): who each node's neighbours are.

total: everyone; line: n0 - n1 - ...; grid: a square-ish grid, neighbours up, down, left,
right (Maelstrom's default); tree2, tree3, tree4: a tree with that many children per node.
Names are the programs' (n0, n1, ...).
"""

from __future__ import annotations

import math

TOPOLOGIES = ("grid", "line", "total", "tree2", "tree3", "tree4")
TOPOLOGY_FILE = "topology.json"  # in the run's data/: the topology a broadcast run uses


def topology(kind: str, n: int) -> dict[str, list[str]]:
    if kind not in TOPOLOGIES:
        raise ValueError(f"unknown topology {kind!r} (known: {', '.join(TOPOLOGIES)})")
    ids = [f"n{i}" for i in range(n)]
    edges: dict[int, set[int]] = {i: set() for i in range(n)}

    def link(a: int, b: int) -> None:
        if a != b:
            edges[a].add(b)
            edges[b].add(a)

    if kind == "total":
        for a in range(n):
            for b in range(n):
                link(a, b)
    elif kind == "line":
        for a in range(n - 1):
            link(a, a + 1)
    elif kind == "grid":
        width = max(1, math.isqrt(n - 1) + 1 if n > 1 else 1)
        for a in range(n):
            if (a + 1) % width and a + 1 < n:
                link(a, a + 1)
            if a + width < n:
                link(a, a + width)
    else:
        fanout = int(kind[-1])
        for a in range(1, n):
            link(a, (a - 1) // fanout)
    return {ids[a]: [ids[b] for b in sorted(edges[a])] for a in range(n)}
