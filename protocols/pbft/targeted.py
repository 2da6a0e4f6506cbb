"""Targeted schedules for PBFT's named mutations, on the in-memory network (simnet).

Random faults rarely reach these bugs (issue 21 measured why), so each schedule drives
the one situation its classic bug needs; run with and without the mutation, it shows the
violation and its absence. The tests (tests/test_pbft_mutations.py) and `labctl
selftest` (when explore does not catch the mutation within its budget) use them;
`SCHEDULES` is what `PbftProtocol.targeted` names (protocols/targeted.py).
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.pbft import PbftProtocol
from protocols.pbft.messages import Commit, CommitProof, PrePrepare, command_digest
from protocols.simnet import SimNet
from protocols.targeted import Schedule, kinds


def put_all(net: SimNet, key: str, value: str, client: str = "c0") -> str:
    """What a PBFT client does: the request goes to every replica."""
    command = net.command("put", client, key=key, value=value)
    for node in net.ids:
        net.request(node, command)
    return command.request_id


def net_for(mutate: str, seed: int = 2) -> SimNet:
    return SimNet(PbftProtocol, 4, seed=seed, options={"mutate": mutate})


def one_equivocating_primary(net: SimNet) -> None:
    """f = 1 liar: the primary sends each backup a different pre-prepare per number."""
    net.set_byzantine("r0", "equivocate")
    for i in range(6):
        put_all(net, f"k{i}", str(i), client=f"c{i}")
    net.run_for(1.5)


def forged_commit_proof(net: SimNet) -> None:
    """r3 lies: it makes up a commit certificate for a request the primary never ordered,
    the commits "from" r0, r1 and r2 signed with nothing, and sends it to r1 in an envelope
    it signs itself (the only key it has). Meanwhile the primary orders a real request at
    that number, which the others commit."""
    put_all(net, "x", "real")
    assert net.run_until(lambda: all(net.kv(i).get("x") == "real" for i in net.ids), 2.0)
    net.run_for(0.2)
    seq = net.status("r1")["applied_index"] + 1
    liar = net.proto("r3").signer  # type: ignore[attr-defined]
    cmd = net.command("put", key="x", value="forged")
    pp = PrePrepare(0, seq, command_digest(cmd), "r0", cmd, sig=b"\0" * 32)
    commits = tuple(Commit(0, seq, pp.digest, s, sig=b"\1" * 32) for s in ("r0", "r1", "r2"))
    net._send("r3", "r1", liar.sign(CommitProof(pp, commits, "r3")))
    net.run_for(0.01)
    put_all(net, "x", "next", client="c1")
    net.run_for(1.0)


def committed_at_one_replica_then_view_change(net: SimNet) -> None:
    """Request A prepares everywhere but commits only at the primary r0 (every other
    replica's commits are lost), and r1, the next primary, never got A from the client.
    r0 is cut off; request B makes the backups change view. The new view must re-issue A
    at its number from the prepared certificates; without them r1 gives it to B."""
    net.filter = lambda src, dst, msg: (
        not (
            (isinstance(msg, Commit) and dst != "r0")
            or (dst == "r1" and getattr(getattr(msg, "command", None), "value", None) == "A")
        )
    )
    put_all(net, "k", "A")
    assert net.run_until(lambda: net.kv("r0").get("k") == "A", 2.0)
    net.filter = None
    net.isolate("r0")
    put_all(net, "k", "B", client="c1")
    net.run_until(lambda: all(net.kv(i).get("k") for i in ("r1", "r2", "r3")), 5.0)
    net.run_for(0.5)


def _schedule(schedule: Callable[[SimNet], object]) -> Schedule:
    """`schedule` as a targeted schedule: a fresh network with the mutation, judged."""

    def run(mutate: str, seed: int) -> set[str]:
        net = net_for(mutate, seed)
        schedule(net)
        return kinds(net)

    return run


SCHEDULES: dict[str, Schedule] = {
    "floor-quorum": _schedule(one_equivocating_primary),
    "skip-verify": _schedule(forged_commit_proof),
    "view-change-no-proof": _schedule(committed_at_one_replica_then_view_change),
}
