"""PBFT's normal case on the in-memory network: three phases, f+1 matching replies,
message counts, pipelining, checkpoints and their garbage collection, duplicates, options."""

from __future__ import annotations

import pytest

from protocols.base import ConfigError, decode_options
from protocols.pbft import Options, PbftProtocol
from protocols.pbft.messages import Commit, Prepare, PrePrepare, StableCheckpoint
from tests.pbft_helpers import (
    accepted,
    answers,
    applied_ids,
    make_net,
    put_all,
    send_all,
    wait_accepted,
    write,
)


@pytest.mark.parametrize("n", [4, 7])
def test_a_request_is_executed_everywhere_and_answered_by_every_replica(n: int) -> None:
    net = make_net(n)
    rid = put_all(net, "x", "1")
    assert wait_accepted(net, rid, 0.5) == ("ok", 1, "1", None)
    assert net.run_until(lambda: len(answers(net, rid).get(("ok", 1, "1", None), ())) == n, 0.5)
    for node in net.ids:
        assert net.applied(node)[0][0:2] == (1, 0)  # sequence number 1, term always 0
        assert net.kv(node) == {"x": "1"}
        s = net.status(node)
        assert (s["applied_index"], s["commit_index"], s["view"], s["term"]) == (1, 1, 0, 0)
        assert s["role"] == ("primary" if node == "r0" else "backup")
        assert s["leader"] == "r0" and s["primary"] == "r0" and s["lease_expiry"] is None
    net.check()


@pytest.mark.parametrize("n", [4, 7])
def test_message_counts_per_request_follow_the_three_phases(n: int) -> None:
    net = make_net(n)
    for i in range(5):
        write(net, f"k{i}", str(i))
    net.run_for(0.05)
    requests = 5
    # One pre-prepare to each backup; a prepare from each backup to every other replica;
    # a commit from every replica to every other one.
    assert net.counts["PrePrepare"] == requests * (n - 1)
    assert net.counts["Prepare"] == requests * (n - 1) * (n - 1)
    assert net.counts["Commit"] == requests * n * (n - 1)
    assert net.counts["ClientReply"] == requests * n
    assert net.counts["ViewChange"] == 0
    net.check()


def test_pipelined_requests_execute_in_sequence_order_everywhere() -> None:
    net = make_net(4, seed=3, batch=1, pipeline=256)  # one request per number
    rids = [put_all(net, f"k{i % 7}", str(i), client=f"c{i % 3}") for i in range(60)]
    for rid in rids:
        wait_accepted(net, rid, 2.0)
    net.run_for(0.05)
    orders = {node: applied_ids(net, node) for node in net.ids}
    assert all(o == orders["r0"] for o in orders.values())
    assert sorted(orders["r0"]) == sorted(rids)
    seqs = [i for i, _, _ in net.applied("r1")]
    assert seqs == list(range(1, 61))
    # They were in flight together: the primary assigned many numbers before the first
    # one executed.
    assert net.status("r0")["seq"] == 61
    net.check()


def test_under_load_the_primary_batches_requests_per_sequence_number() -> None:
    net = make_net(4, seed=3)  # batch 64, pipeline 4
    rids = [put_all(net, f"k{i % 7}", str(i), client=f"c{i % 3}") for i in range(200)]
    for rid in rids:
        wait_accepted(net, rid, 2.0)
    net.run_for(0.05)
    orders = {node: applied_ids(net, node) for node in net.ids}
    assert all(o == orders["r0"] for o in orders.values())
    assert sorted(orders["r0"]) == sorted(rids)
    # Requests are numbered 1..200 in execution order whatever the batches.
    assert [i for i, _, _ in net.applied("r2")] == list(range(1, 201))
    # The first `pipeline` went alone; what arrived meanwhile went together.
    numbers = net.status("r0")["seq"] - 1
    assert 4 < numbers <= 20, numbers
    assert net.kv("r1") == net.kv("r3")
    net.check()


def test_a_lone_request_is_not_held_back_by_batching() -> None:
    net = make_net(4, seed=4)
    rid = put_all(net, "k", "v")
    # Nothing in flight: it gets a number at once, as without batching.
    wait_accepted(net, rid, 0.1)
    assert net.status("r0")["seq"] == 2
    net.check()


def test_checkpoints_become_stable_and_collect_garbage() -> None:
    net = make_net(4, checkpoint_interval=8, window=16)
    for i in range(30):
        write(net, f"k{i}", str(i))
    net.run_for(0.05)
    for node in net.ids:
        s = net.status(node)
        assert s["checkpoint"] == 24 and s["low_watermark"] == 24
        assert s["high_watermark"] == 40
        assert s["log"] <= 30 - 24  # slots at or below the stable checkpoint are gone
        disk = net.nodes[node].disk
        stables = [r for r in disk if isinstance(r, StableCheckpoint)]
        assert [r.seq for r in stables] == [24]  # the WAL was compacted
        assert not any(isinstance(r, PrePrepare) and r.seq <= 24 for r in disk)
    assert len(net.events_of("pbft.checkpoint")) == 4 * 3
    net.check()


def test_more_requests_than_the_window_wait_for_the_watermark_to_move() -> None:
    net = make_net(4, checkpoint_interval=4, window=8, batch=1)  # a number each
    rids = [put_all(net, "k", str(i), client=f"c{i}") for i in range(40)]
    for rid in rids:
        wait_accepted(net, rid, 3.0)
    assert net.status("r2")["applied_index"] == 40
    assert net.counts["ViewChange"] == 0
    net.check()


def test_a_duplicate_client_timestamp_is_executed_once() -> None:
    net = make_net(4)
    command = net.command("put", key="x", value="1")
    send_all(net, command)
    first = wait_accepted(net, command.request_id)
    net.run_for(0.05)  # every replica has answered
    replies_before = len(net.replies_for(command.request_id))
    send_all(net, command)  # the same request id again: a retry
    net.run_for(0.2)
    for node in net.ids:
        assert applied_ids(net, node).count(command.request_id) == 1
        assert net.status(node)["duplicates"] == 1
    assert net.status("r0")["seq"] == 2  # no second sequence number
    assert net.counts["PrePrepare"] == 3
    # The retry is answered again with what the put returned.
    assert len(net.replies_for(command.request_id)) == replies_before + 4
    assert accepted(net, command.request_id) == first
    net.check()


def test_reads_and_cas_go_through_the_order() -> None:
    net = make_net(4)
    write(net, "x", "1")
    rid = send_all(net, net.command("cas", key="x", expected="1", value="2"))
    assert wait_accepted(net, rid) == ("ok", 2, "1", None)
    rid = send_all(net, net.command("get", key="x"))
    assert wait_accepted(net, rid) == ("ok", 3, "2", None)
    net.check()


def test_options_are_validated() -> None:
    opts = decode_options(Options, {"view_change_timeout": "200ms", "checkpoint_interval": "8"})
    assert opts.view_change_timeout == 0.2 and opts.checkpoint_interval == 8
    with pytest.raises(ConfigError, match="view_change_timeout"):
        decode_options(Options, {"view_change_timeout": 0})
    with pytest.raises(ConfigError, match="window"):
        decode_options(Options, {"checkpoint_interval": 64, "window": 32})
    with pytest.raises(ConfigError, match="unknown option"):
        decode_options(Options, {"election_timeout": 1})


def test_unknown_byzantine_mode_is_a_config_error_listing_the_modes() -> None:
    net = make_net(4)
    with pytest.raises(ConfigError, match="silent, equivocate, forge, delay-primary"):
        net.proto("r1").set_byzantine(net.now, "lie")
    assert PbftProtocol.byzantine_tolerant and PbftProtocol.default_nodes == 4
    assert PbftProtocol.exactly_once


def test_votes_are_authenticated_by_their_own_sender() -> None:
    net = make_net(4)
    write(net, "x", "1")
    prepares = [s.msg for s in net.messages_of("Prepare")]
    commits = [s.msg for s in net.messages_of("Commit")]
    signer = net.proto("r0").signer  # type: ignore[attr-defined]
    assert prepares and all(isinstance(m, Prepare) and signer.verify(m) for m in prepares)
    assert commits and all(isinstance(m, Commit) and signer.verify(m) for m in commits)


def test_a_message_verified_once_does_not_vouch_for_an_altered_copy() -> None:
    # verify remembers messages that passed: a copy with a changed field but the same
    # signature, or one claiming another lab key, must still be checked and refused.
    import msgspec

    from protocols.pbft.auth import Signer

    signer = Signer("lab-key", "r0", ("r0", "r1"))
    other_lab = Signer("other-key", "r1", ("r0", "r1"))
    vote = Signer("lab-key", "r1", ("r0", "r1")).sign(Prepare(0, 1, b"d" * 32, "r1"))
    assert signer.verify(vote) and signer.verify(msgspec.structs.replace(vote))
    assert not signer.verify(msgspec.structs.replace(vote, seq=2))
    assert not signer.verify(msgspec.structs.replace(vote, sender="r0"))
    assert not other_lab.verify(vote)
