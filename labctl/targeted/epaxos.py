"""Targeted schedules for EPaxos's named mutations, on the in-memory network (simnet).

Random faults rarely reach these bugs (issue 21 measured why), so each schedule drives
the one situation its classic bug needs; run with and without the mutation, it shows the
violation and its absence. The tests (tests/test_epaxos_mutations.py) and `labctl
selftest` (when explore does not catch the mutation within its budget) use them.
"""

from __future__ import annotations

from protocols.epaxos import EPaxosProtocol
from protocols.simnet import SimNet


def net_for(mutate: str, seed: int, n: int = 3) -> SimNet:
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
