"""EPaxos's named mutations, each shown by a schedule that makes its bug do harm, beside
the same schedule without the mutation (on the in-memory network)."""

from __future__ import annotations

import pytest

from protocols.epaxos import EPaxosProtocol
from protocols.simnet import SimNet
from tests.mutation_helpers import declared, kinds


def _net(mutate: str, seed: int, n: int = 3) -> SimNet:
    return SimNet(EPaxosProtocol, n, seed=seed, options={"mutate": mutate})


def concurrent_writes(net: SimNet, rounds: int = 30) -> None:
    """Replicas two apart propose a write to one key at the same moment, round after
    round: interfering commands whose (thrifty) fast quorums meet only if the protocol is
    right, with no third command in them to push the pair off the fast path."""
    writers = net.ids[::2][:2]
    for r in range(rounds):
        for node in writers:
            net.put(node, "k", f"{node}-{r}", client=f"c{net.ids.index(node)}")
        net.run_for(0.05)
    net.run_for(1.0)


@pytest.mark.parametrize(("name", "n"), [("small-fast-quorum", 3), ("small-fast-quorum", 5),
                                         ("drop-deps", 3), ("drop-deps", 5)])  # fmt: skip
def test_interfering_commands_execute_in_different_orders(name: str, n: int) -> None:
    net = _net(name, seed=1, n=n)
    concurrent_writes(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("epaxos", name), net.violations[:3]


@pytest.mark.parametrize("n", [3, 5])
def test_the_same_writes_agree_on_one_order_without_a_mutation(n: int) -> None:
    net = _net("", seed=1, n=n)
    concurrent_writes(net)
    assert kinds(net) == set()
