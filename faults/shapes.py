"""Partition shapes: named ways to cut a cluster, as Jepsen's nemeses do.

Each shape turns the replica list (and, for `isolate`, a node) into the directed links to
drop. Clients and the broker are never cut by a shape.

- isolate: one node against the rest.
- halves: the first half against the second (the larger side first for odd sizes).
- majorities-ring: every node keeps links to its ring neighbours only, so each sees a
  majority but no two majorities agree: the shape that breaks protocols assuming
  "a majority I can see is THE majority".
- bridge: two halves that cannot talk, except through one node in the middle that talks
  to both.
"""

from __future__ import annotations

SHAPES = ("isolate", "halves", "majorities-ring", "bridge")


class ShapeError(ValueError):
    pass


def _cut(a: list[str], b: list[str]) -> set[tuple[str, str]]:
    return {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}


def shape_links(shape: str, replicas: list[str], node: str | None = None) -> list[tuple[str, str]]:
    """The directed (src, dst) links a shape drops, sorted."""
    n = len(replicas)
    if shape == "isolate":
        if node is None or node not in replicas:
            raise ShapeError("shape 'isolate' needs a replica in 'node'")
        links = _cut([node], [r for r in replicas if r != node])
    elif shape == "halves":
        k = (n + 1) // 2
        links = _cut(replicas[:k], replicas[k:])
    elif shape == "majorities-ring":
        if n < 3:
            raise ShapeError("shape 'majorities-ring' needs at least 3 replicas")
        reach = (n // 2 + 1) // 2  # neighbours on each side so each sees a bare majority
        keep = set()
        for i, r in enumerate(replicas):
            for d in range(1, reach + 1):
                keep.add((r, replicas[(i + d) % n]))
                keep.add((r, replicas[(i - d) % n]))
        links = {(a, b) for a in replicas for b in replicas if a != b and (a, b) not in keep}
    elif shape == "bridge":
        if n < 3:
            raise ShapeError("shape 'bridge' needs at least 3 replicas")
        mid = n // 2
        left, right = replicas[:mid], replicas[mid + 1 :]
        links = _cut(left, right)
    else:
        raise ShapeError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    return sorted(links)
