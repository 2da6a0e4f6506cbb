"""Targeted schedules for EPaxos's named mutations, on the in-memory network (simnet).

Random faults rarely reach these bugs (issue 21 measured why), so each schedule drives
the one situation its classic bug needs; run with and without the mutation, it shows the
violation and its absence. The tests (tests/test_epaxos_mutations.py) and `labctl
selftest` (when explore does not catch the mutation within its budget) use them;
`SCHEDULES` is what `EPaxosProtocol.targeted` names (protocols/targeted.py).
"""

from __future__ import annotations

from protocols.base import Command
from protocols.epaxos import EPaxosProtocol
from protocols.epaxos.invariants import committed_attributes
from protocols.epaxos.manual import Manual
from protocols.simnet import SimNet
from protocols.targeted import Schedule, kinds


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


def _put(rid: str) -> Command:
    return Command(request_id=rid, client="c0", op="put", key="k", value="v")


def three_recoveries(mutate: str) -> list[str]:
    """Sutra 2019 on three replicas: gamma (r0's) is recovered three times. Recovery 1
    (r1) accepts attributes X at r1 alone; recovery 2 (r2, a higher ballot) redoes Phase 1
    after r2 saw a new conflicting command and commits Y, accepted at r0 too; recovery 3
    (r1, higher again) hears r1 (X, voted in b1) and r0 (Y, voted in b2). Comparing vote
    ballots it picks Y; with one ballot variable both look voted in b3, and it commits X,
    which r2 did not. Returns the instances committed with different attributes."""
    m = Manual(3, thrifty=False, mutate=mutate)
    m.client("r2", _put("delta"))  # a conflicting command, fast-committed by r2 with r1
    m.deliver("PreAccept", src="r2", dst="r1")
    m.drop("PreAccept", src="r2")
    m.deliver("PreAcceptReply", dst="r2")
    m.drop("Commit", src="r2")
    m.client("r0", _put("gamma"))  # pre-accepted at r1 only; r0 goes quiet
    m.deliver("PreAccept", src="r0", dst="r1")
    m.drop(src="r0")
    m.drop(dst="r0")
    # Recovery 1 by r1: Phase 1 with r2, then X accepted at r1 only.
    m.recover("r1", (0, 1))
    m.deliver("Prepare", src="r1", dst="r2")
    m.drop("Prepare")
    m.deliver("PrepareReply", dst="r1")
    m.deliver("PreAccept", src="r1", dst="r2")
    m.drop("PreAccept")
    m.deliver("PreAcceptReply", dst="r1")
    m.drop("Accept")
    m.client("r2", _put("eps"))  # a command r1 never hears of
    m.drop(src="r2")
    # Recovery 2 by r2 with r0 (the leader answers): Phase 1 again, Y committed at r2.
    m.recover("r2", (0, 1))
    m.deliver("Prepare", src="r2", dst="r0")
    m.drop("Prepare")
    m.deliver("PrepareReply", dst="r2")
    m.deliver("PreAccept", src="r2", dst="r0")
    m.drop("PreAccept")
    m.deliver("PreAcceptReply", dst="r2")
    m.deliver("Accept", src="r2", dst="r0")
    m.drop("Accept")
    m.deliver("AcceptReply", dst="r2")
    m.drop(src="r2")
    # Recovery 3 by r1 with r0; its first ballot is below r0's promise and is refused.
    for _ in range(2):
        m.recover("r1", (0, 1))
        m.deliver("Prepare", src="r1", dst="r0")
        m.drop("Prepare")
        m.deliver("PrepareReply", dst="r1")
        lead = m.replicas["r1"].leading.get((0, 1))
        if lead is not None and lead.phase != "prepare":
            break
    m.deliver("Accept", src="r1", dst="r0")
    m.drop("Accept")
    m.deliver("AcceptReply", dst="r1")
    m.deliver("Commit")
    return committed_attributes(dict(m.replicas))


def _concurrent_writes(mutate: str, seed: int) -> set[str]:
    net = net_for(mutate, seed)
    concurrent_writes(net)
    return kinds(net)


def _three_recoveries(mutate: str, seed: int) -> set[str]:
    # Driven by hand, message by message: no seed to vary; any instance committed with
    # different attributes at two replicas is divergence.
    return {"divergence"} if three_recoveries(mutate) else set()


SCHEDULES: dict[str, Schedule] = {
    "single-ballot": _three_recoveries,
    "drop-deps": _concurrent_writes,
    "small-fast-quorum": _concurrent_writes,
}
