"""The naive protocol as a pure state machine: the seed's rules, step by step."""

from __future__ import annotations

import random

from protocols.base import ClientReply, ClientRequest, Command, NodeConfig, decode_options
from protocols.naive import Append, EntryRecord, Heartbeat, NaiveProtocol, TermRecord

REPLICAS = ("r0", "r1", "r2")


def make(node: str, **options: object) -> NaiveProtocol:
    opts = decode_options(NaiveProtocol.Options, dict(options))
    return NaiveProtocol(NodeConfig(node, REPLICAS, opts, random.Random(1)))


def put(rid: str, value: str = "v") -> ClientRequest:
    return ClientRequest(Command(request_id=rid, client="c0", op="put", key="k", value=value))


def test_r0_starts_as_leader_in_term_1_and_others_reject_writes() -> None:
    r0, r1 = make("r0"), make("r1")
    ready = r0.start(0.0, [])
    assert ready.persist == [TermRecord(1)]
    assert [e.kind for e in ready.events] == ["became_leader"]
    assert {dst for dst, _ in ready.messages} == {"r1", "r2"}
    r1.start(0.0, [])
    out = r1.on_client(0.01, "c0", put("a"))
    assert out.messages == [("c0", ClientReply("a", "not_leader", "r1", leader=None))]
    r1.on_message(0.02, "r0", Heartbeat(1, 0))
    out = r1.on_client(0.03, "c0", put("b"))
    assert out.messages[0][1].leader == "r0"


def test_leader_assigns_seq_as_log_length_plus_one_and_persists_first() -> None:
    r0 = make("r0")
    r0.start(0.0, [])
    out = r0.on_client(0.01, "c0", put("a"))
    assert isinstance(out.persist[0], EntryRecord) and out.persist[0].entry.seq == 1
    assert out.committed[0].index == 1 and out.committed[0].reply
    assert r0.on_client(0.02, "c0", put("b")).committed[0].index == 2


def test_follower_self_promotes_after_missing_heartbeats_without_asking() -> None:
    r1 = make("r1")
    r1.start(0.0, [])
    r1.on_message(0.0, "r0", Heartbeat(1, 0))
    assert r1.on_tick(0.25).events == []
    out = r1.on_tick(0.35)
    assert r1.role == "leader" and r1.term == 1  # local term: 0 + 1, the same as r0's
    assert out.persist == [TermRecord(1)]
    assert out.events[0].data == {"term": 1, "how": "self-promoted"}


def test_a_follower_ignores_another_claimant_and_leaders_never_step_down() -> None:
    r1 = make("r1")
    r1.start(0.0, [])
    r1.on_message(0.0, "r0", Heartbeat(1, 0))
    r1.on_message(0.2, "r2", Heartbeat(1, 0))  # r2's claim does not reset r1's timer
    r1.on_tick(0.31)
    assert r1.role == "leader"
    r1.on_message(0.4, "r0", Heartbeat(5, 9))
    assert r1.role == "leader"


def test_replication_appends_only_at_the_next_free_seq() -> None:
    r0, r1 = make("r0"), make("r1")
    r0.start(0.0, [])
    r1.start(0.0, [])
    out = r0.on_client(0.01, "c0", put("a"))
    append = next(m for dst, m in out.messages if dst == "r1")
    got = r1.on_message(0.02, "r0", append)
    assert [c.index for c in got.committed] == [1]
    conflicting = Append(1, [r0.log[0].__class__(1, 1, put("zz").command)])
    assert r1.on_message(0.03, "r0", conflicting).committed == []  # never repaired
    assert r1.log[0].command.request_id == "a"


def test_recovery_restores_term_and_log_as_follower() -> None:
    r0 = make("r0")
    r0.start(0.0, [])
    records = [TermRecord(1)] + [
        r0.on_client(0.01, "c0", put(f"w{i}")).persist[0] for i in range(3)
    ]
    again = make("r0")
    out = again.start(5.0, records)
    assert again.role == "follower" and again.term == 1 and len(again.log) == 3
    assert [c.index for c in out.committed] == [1, 2, 3]


def test_options_are_validated() -> None:
    import pytest

    from protocols.base import ConfigError

    with pytest.raises(ConfigError, match="must exceed"):
        make("r0", election_timeout="10ms")
    with pytest.raises(ConfigError, match="unknown option"):
        make("r0", quorum=2)
