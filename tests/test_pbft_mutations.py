"""PBFT's named mutations, each shown by a schedule that makes its bug do harm, beside the
same schedule without the mutation (on the in-memory network)."""

from __future__ import annotations

from protocols.pbft import PbftProtocol
from protocols.pbft.messages import Commit, CommitProof, PrePrepare, command_digest
from protocols.simnet import SimNet
from tests.mutation_helpers import declared, kinds
from tests.pbft_helpers import put_all


def _net(mutate: str, seed: int = 2) -> SimNet:
    return SimNet(PbftProtocol, 4, seed=seed, options={"mutate": mutate})


def one_equivocating_primary(net: SimNet) -> None:
    """f = 1 liar: the primary sends each backup a different pre-prepare per number."""
    net.set_byzantine("r0", "equivocate")
    for i in range(6):
        put_all(net, f"k{i}", str(i), client=f"c{i}")
    net.run_for(1.5)


def test_floor_quorum_lets_one_liar_split_the_honest_replicas() -> None:
    net = _net("floor-quorum")
    one_equivocating_primary(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("pbft", "floor-quorum"), net.violations


def test_one_liar_is_voted_out_with_quorums_of_2f_plus_1() -> None:
    net = _net("")
    one_equivocating_primary(net)
    assert kinds(net) == set()


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


def test_skip_verify_executes_a_request_nobody_ordered() -> None:
    net = _net("skip-verify")
    forged_commit_proof(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("pbft", "skip-verify"), net.violations


def test_a_forged_commit_certificate_is_dropped_when_signatures_are_checked() -> None:
    net = _net("")
    forged_commit_proof(net)
    assert kinds(net) == set()
    assert net.status("r1")["drops"].get("bad_commit_proof") == 1


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


def test_view_change_no_proof_gives_a_committed_number_to_another_request() -> None:
    net = _net("view-change-no-proof")
    committed_at_one_replica_then_view_change(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("pbft", "view-change-no-proof")


def test_a_new_view_re_issues_what_was_prepared() -> None:
    net = _net("")
    committed_at_one_replica_then_view_change(net)
    assert kinds(net) == set()
