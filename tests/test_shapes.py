"""Partition shapes cut exactly the links they promise."""

from __future__ import annotations

import pytest

from faults.shapes import ShapeError, shape_links

R5 = ["r0", "r1", "r2", "r3", "r4"]


def reachable(links: list[tuple[str, str]], node: str) -> set[str]:
    cut = set(links)
    return {r for r in R5 if r == node or (node, r) not in cut}


def test_isolate_cuts_one_node_both_ways() -> None:
    links = shape_links("isolate", R5, "r2")
    assert reachable(links, "r2") == {"r2"}
    assert reachable(links, "r0") == {"r0", "r1", "r3", "r4"}


def test_halves_split_larger_side_first() -> None:
    links = shape_links("halves", R5)
    assert reachable(links, "r0") == {"r0", "r1", "r2"}
    assert reachable(links, "r4") == {"r3", "r4"}


def test_majorities_ring_gives_every_node_a_different_majority() -> None:
    links = shape_links("majorities-ring", R5)
    views = {r: frozenset(reachable(links, r)) for r in R5}
    assert all(len(v) == 3 for v in views.values())  # each sees a bare majority
    assert len(set(views.values())) == 5  # and no two see the same one


def test_bridge_keeps_one_node_in_touch_with_both_halves() -> None:
    links = shape_links("bridge", R5)
    assert reachable(links, "r2") == set(R5)
    assert reachable(links, "r0") == {"r0", "r1", "r2"}
    assert reachable(links, "r4") == {"r2", "r3", "r4"}


def test_bad_shapes() -> None:
    with pytest.raises(ShapeError):
        shape_links("isolate", R5)
    with pytest.raises(ShapeError):
        shape_links("donut", R5)
