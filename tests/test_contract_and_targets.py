"""The parts of the contract and the lab that every protocol leans on: what may overtake
an fsync, byzantine modes, client quorums, roles in a leaderless protocol, and the
scenario expectations that judge a run in phases."""

from __future__ import annotations

import random

import pytest

from faults.model import byzantine_problem
from faults.targets import resolve
from labctl.scenario.format import ScenarioError, parse
from labctl.scenario.runner import evaluate
from protocols import get
from protocols.base import ClientReply, ConfigError, Ready, client_quorum


def test_parallel_messages_may_overtake_the_fsync_until_a_vote_is_persisted() -> None:
    first = Ready()
    first.persist_overtakable(ClientReply("a", "ok", "r0"))  # a leader's own entries
    first.send_parallel("r1", ClientReply("append-1", "ok", "r0"))
    second = Ready()
    second.send_parallel("r2", ClientReply("append-2", "ok", "r0"))
    first.merge(second)
    assert [m.request_id for _, m in first.parallel] == ["append-1", "append-2"]

    vote = Ready()
    vote.send("r1", ClientReply("vote", "ok", "r0"))
    vote.persist.append(ClientReply("term", "ok", "r0"))  # a term or a vote: it fences
    first.merge(vote)
    later = Ready()
    later.send_parallel("r2", ClientReply("append-3", "ok", "r0"))
    first.merge(later)
    # What came after the vote waits for the fsync like any message.
    assert [m.request_id for _, m in first.parallel] == ["append-1", "append-2"]
    assert [m.request_id for _, m in first.messages] == ["vote", "append-3"]
    assert first.barrier


def test_a_barrier_demotes_what_the_same_batch_queued_before_it() -> None:
    out = Ready()
    out.send_parallel("r1", ClientReply("append", "ok", "r0"))
    out.send("r1", ClientReply("reply", "ok", "r0"))
    out.persist.append(ClientReply("vote", "ok", "r0"))
    out.seal()  # what every input's batch gets (BatchingProtocol._finish, Ready.merge)
    assert out.parallel == [] and [m.request_id for _, m in out.messages] == ["append", "reply"]
    out.send_parallel("r2", ClientReply("late", "ok", "r0"))
    assert out.parallel == [] and out.messages[-1][1].request_id == "late"


def test_byzantine_modes_belong_to_the_protocol() -> None:
    assert byzantine_problem("pbft", "equivocate") is None
    assert byzantine_problem("pbft", "honest") is None
    assert "no byzantine mode 'lie'" in (byzantine_problem("pbft", "lie") or "")
    assert "has no byzantine modes" in (byzantine_problem("raft", "silent") or "")
    raft = get("raft")
    with pytest.raises(ConfigError, match="raft has no byzantine mode"):
        raft.set_byzantine(object.__new__(raft), 0.0, "silent")


def test_clients_need_f_plus_1_matching_replies_only_under_pbft() -> None:
    assert client_quorum(get("pbft"), 4) == 2
    assert client_quorum(get("pbft"), 7) == 3
    assert client_quorum(get("raft"), 5) == 1
    assert client_quorum(get("epaxos"), 5) == 1


def test_leader_roles_in_a_leaderless_protocol_name_a_stand_in() -> None:
    replicas = ["r0", "r1", "r2"]
    status = {r: {"role": "replica"} for r in replicas}
    kw = {"replicas": replicas, "endpoints": set(replicas), "status": status,
          "rng": random.Random(1), "display": get("epaxos").display()}  # fmt: skip
    assert resolve(["leader"], **kw) == ["r0"]
    assert resolve(["followers"], **kw) == ["r1", "r2"]
    # Raft without a leader right now: no stand-in, the step reports it.
    raft = {r: {"role": "follower"} for r in replicas}
    with pytest.raises(Exception, match="no node is leader"):
        resolve(["leader"], **{**kw, "status": raft, "display": get("raft").display()})
    # Which roles lead is the protocol's to say: PBFT's primary does, its backups do not.
    pbft = {"r0": {"role": "backup", "term": 1}, "r1": {"role": "primary", "term": 1},
            "r2": {"role": "backup", "term": 1}}  # fmt: skip
    kw = {**kw, "status": pbft, "display": get("pbft").display()}
    assert resolve(["leader"], **kw) == ["r1"]
    assert resolve(["followers"], **kw) == ["r0", "r2"]


SCENARIO = {
    "name": "phases",
    "protocol": "pbft",
    "nodes": 4,
    "duration": "10s",
    "step": [{"at": "2s", "fault": "byzantine", "node": "primary", "mode": "equivocate"}],
    "expect": {"pbft": {"safe_before": "6s", "seen": ["pbft.view_change"]}},
}


def test_phase_expectations_validate() -> None:
    sc = parse(SCENARIO, "x.toml")
    assert sc.expectations("pbft") == {"safe_before": 6.0, "seen": ["pbft.view_change"]}
    with pytest.raises(ScenarioError, match=r"step\[0\]\.mode: protocol .raft. has no byz"):
        parse(SCENARIO, "x.toml", protocol="raft")
    bad = {**SCENARIO, "step": [{**SCENARIO["step"][0], "mode": "sulk"}]}
    with pytest.raises(ScenarioError, match="no byzantine mode 'sulk'"):
        parse(bad, "x.toml")
    with pytest.raises(ScenarioError, match=r"expect\.pbft\.seen"):
        parse({**SCENARIO, "expect": {"pbft": {"seen": "view_change"}}}, "x.toml")
    with pytest.raises(ScenarioError, match=r"expect\.pbft\.safe_before"):
        parse({**SCENARIO, "expect": {"pbft": {"safe_before": "soon"}}}, "x.toml")


def test_safe_before_and_seen_judge_a_run_in_phases() -> None:
    ops = {"invoked": 10, "ok": 10, "fail": 0, "info": 0}
    late = [{"kind": "divergence", "t": 107.0}]
    expect = {"safe_before": 6.0, "seen": ["pbft.view_change"], "found": ["divergence"]}
    got = evaluate(expect, late, ops, t0=100.0, events={"pbft.view_change": 2})
    assert all(e["met"] for e in got), got
    early = [{"kind": "divergence", "t": 104.0}]
    got = evaluate(expect, early, ops, t0=100.0, events={"pbft.view_change": 0})
    assert [e["met"] for e in got] == [False, False, True]


def test_options_of_one_protocol_live_in_their_own_table() -> None:
    raw = {"name": "o", "protocol": "raft", "duration": "5s",
           "options": {"election_timeout": "200ms", "raft": {"max_drift": 0.1}}}  # fmt: skip
    assert parse(raw, "o.toml").options == {"election_timeout": "200ms", "max_drift": 0.1}
    only_raft = {**raw, "options": {"raft": {"max_drift": 0.1}}}
    assert parse(only_raft, "o.toml", protocol="epaxos").options == {}
    with pytest.raises(ScenarioError, match=r"options\.<protocol>"):
        parse(raw, "o.toml", protocol="epaxos")  # election_timeout is Raft's
