"""Byzantine replicas: what each misbehaviour does to PBFT with at most f of them (safety
and liveness hold), what two equivocators out of four do (safety breaks, detected), and
that forged signatures and certificates are dropped and counted."""

from __future__ import annotations

import msgspec

from protocols.pbft.messages import (
    Checkpoint,
    Commit,
    CommitProof,
    PreparedCert,
    PrePrepare,
    ViewChange,
    command_digest,
)
from tests.pbft_helpers import (
    accepted,
    answers,
    make_net,
    put_all,
    wait_accepted,
    write,
)


def test_one_equivocating_primary_cannot_break_safety_and_is_replaced() -> None:
    net = make_net(4, seed=2)
    net.set_byzantine("r0", "equivocate")
    rids = [put_all(net, f"k{i}", str(i), client=f"c{i}") for i in range(6)]
    for rid in rids:
        answer = wait_accepted(net, rid, 5.0)
        assert answer[0] == "ok"
    honest = ["r1", "r2", "r3"]
    assert all(net.status(i)["view"] >= 1 for i in honest)  # a view change followed
    assert net.events_of("pbft.view_change")
    drops = sum(net.status(i)["drops"].get("equivocation", 0) for i in honest)
    assert net.counts["PrePrepare"] > 0 and drops >= 0
    # Backups really were sent different requests for one number in view 0.
    sent = [s.msg for s in net.sent if isinstance(s.msg, PrePrepare) and s.src == "r0"]
    digests_for_2 = {m.digest for m in sent if m.view == 0 and m.seq == 2}
    assert len(digests_for_2) == 3
    assert net.run_until(lambda: net.kv("r1") == net.kv("r2") == net.kv("r3"), 2.0)
    net.check()  # no two honest replicas executed different requests at one number


def test_two_equivocators_out_of_four_break_safety() -> None:
    net = make_net(4, seed=2)
    net.set_byzantine("r0", "equivocate")  # the primary
    net.set_byzantine("r1", "equivocate")  # a backup that agrees with everyone
    for i in range(6):
        put_all(net, f"k{i}", str(i), client=f"c{i}")
    net.run_for(0.5)
    # Beyond f, the quorum intersection argument fails: r2 and r3 (both honest) each
    # commit what they were told, with the two liars' votes.
    assert any("divergence" in v for v in net.violations), net.violations
    r2 = {i: c.request_id for i, _, c in net.applied("r2")}
    r3 = {i: c.request_id for i, _, c in net.applied("r3")}
    assert any(r2[i] != r3[i] for i in set(r2) & set(r3))


def test_a_forging_replica_cannot_fool_clients_or_replicas() -> None:
    net = make_net(4, checkpoint_interval=4, window=8, batch=1)
    net.set_byzantine("r3", "forge")
    rids = [put_all(net, f"k{i}", str(i)) for i in range(10)]
    for i, rid in enumerate(rids):
        answer = wait_accepted(net, rid, 3.0)
        assert answer[0] == "ok" and answer[2] == str(i)
    net.run_for(0.05)
    for rid in rids:
        said = answers(net, rid)
        honest = [a for a, nodes in said.items() if nodes & {"r0", "r1", "r2"}]
        assert len(honest) == 1 and said[honest[0]] == {"r0", "r1", "r2"}
        assert any(a[2] == "forged-by-r3" for a, nodes in said.items() if nodes == {"r3"})
    # Its wrong checkpoint digests never matched: checkpoints still became stable.
    assert net.status("r0")["checkpoint"] == 8
    forged = [s.msg for s in net.sent if s.src == "r3" and isinstance(s.msg, Checkpoint)]
    assert forged and all(
        m.digest != net.proto("r0").own_checkpoints.get(m.seq, (b"",))[0]  # type: ignore[attr-defined]
        for m in forged
    )
    net.check()


def test_a_forging_primary_is_outvoted_too() -> None:
    net = make_net(4)
    net.set_byzantine("r0", "forge")
    for i in range(5):
        write(net, f"k{i}", str(i))
    assert net.status("r1")["view"] == 0  # its pre-prepares are honest; its votes not needed
    net.check()


def test_a_silent_backup_changes_nothing_for_clients() -> None:
    net = make_net(4)
    net.set_byzantine("r2", "silent")
    for i in range(5):
        write(net, f"k{i}", str(i))
    assert not [s for s in net.sent if s.src == "r2"]
    assert all(net.status(i)["view"] == 0 for i in net.ids)
    assert net.status("r2")["byzantine"] == "silent"
    net.check()


def test_a_silent_primary_is_replaced() -> None:
    net = make_net(4)
    net.set_byzantine("r0", "silent")
    answer = write(net, "x", "1", max_time=3.0)
    assert answer[1] == 1
    assert net.status("r1")["role"] == "primary"
    net.check()


def test_a_delaying_primary_slows_requests_without_a_view_change() -> None:
    def latency(net_delay: bool) -> float:
        net = make_net(4, view_change_timeout=0.3)
        if net_delay:
            net.set_byzantine("r0", "delay-primary")
        total = 0.0
        for i in range(5):
            start = net.now
            write(net, f"k{i}", str(i), max_time=2.0)
            total += net.now - start
        assert all(net.status(i)["view"] == 0 for i in net.ids)
        assert not net.events_of("pbft.view_change")
        net.check()
        return total / 5

    fast, slow = latency(False), latency(True)
    assert fast < 0.02
    assert 0.24 <= slow < 0.3  # held for 0.8 x the timeout, never past it


def test_honesty_restored_releases_held_pre_prepares() -> None:
    net = make_net(4)
    net.set_byzantine("r0", "delay-primary")
    rid = put_all(net, "x", "1")
    net.run_for(0.05)
    assert accepted(net, rid) is None
    net.set_byzantine("r0", None)
    assert net.status("r0")["byzantine"] is None
    wait_accepted(net, rid, 0.05)


def _tamper(net, node: str, msg: msgspec.Struct, src: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Deliver `msg` to `node` as if `src` (default: its claimed sender) sent it."""
    sender = src or msg.sender  # type: ignore[attr-defined]
    net._send(sender, node, msg)


def test_invalid_signatures_and_certificates_are_dropped_and_counted() -> None:
    net = make_net(4)
    write(net, "x", "1")
    r1 = net.proto("r1")
    signer = r1.signer  # type: ignore[attr-defined]
    cmd = net.command("put", key="evil", value="1")
    # A pre-prepare "from the primary" that the primary never signed.
    fake = PrePrepare(0, 2, command_digest(cmd), "r0", cmd, sig=b"\0" * 32)
    _tamper(net, "r1", fake)
    # A correctly signed message relayed by someone else than its sender.
    real = next(s.msg for s in net.sent if isinstance(s.msg, Commit) and s.src == "r2")
    _tamper(net, "r1", real, src="r3")
    # A digest that is not the command's.
    bad = msgspec.structs.replace(fake, digest=b"\1" * 32)
    _tamper(net, "r1", bad)
    # r3 signs its own view-change with a prepared certificate it made up: the prepares
    # "from" r0 and r2 are signed with r3's key (the only one a liar has).
    r3_signer = net.proto("r3").signer  # type: ignore[attr-defined]
    pp = r3_signer.sign(PrePrepare(0, 2, command_digest(cmd), "r3", cmd))
    cert = PreparedCert(pp, ())
    vc = r3_signer.sign(ViewChange(1, 0, b"", (), (cert,), "r3"))
    _tamper(net, "r1", vc)
    # A commit certificate with 2f+1 commits that r3 forged.
    forged_commits = tuple(
        msgspec.structs.replace(Commit(0, 2, pp.digest, s), sig=b"\2" * 32)
        for s in ("r0", "r2", "r3")
    )
    proof = r3_signer.sign(CommitProof(pp, forged_commits, "r3"))
    _tamper(net, "r1", proof)
    # A checkpoint with a malformed digest, from a node that does not exist.
    _tamper(net, "r1", Checkpoint(8, b"short", "r3", sig=b"\0" * 32))
    _tamper(net, "r1", signer.sign(Checkpoint(8, b"\3" * 32, "r1")), src="r9")
    net.run_for(0.05)
    drops = net.status("r1")["drops"]
    assert drops["bad_signature"] == 1
    assert drops["wrong_sender"] == 1
    assert drops["malformed"] == 2
    assert drops["bad_view_change"] == 1
    assert drops["bad_commit_proof"] == 1
    assert drops["unknown_node"] == 1
    assert net.status("r1")["dropped"] == sum(drops.values())
    assert net.kv("r1") == {"x": "1"}  # nothing of it was executed
    write(net, "y", "2")
    net.check()
