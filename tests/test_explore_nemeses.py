"""Explore's nemeses for the catalogue (labctl/explore.py, labctl/late_replies.py,
labctl/recovery_race.py) and the PBFT forger's made-up certificates: what each one is
offered to, that a reacting one leaves a plain schedule that replays, and that the lie
is one only a mutation believes."""

from __future__ import annotations

import pytest

from labctl import explore
from protocols.pbft.targeted import net_for, put_all
from protocols.targeted import declared, kinds


def test_nemeses_follow_what_the_protocol_declares() -> None:
    raft, epaxos, pbft = (set(explore.nemeses(p)) for p in ("raft", "epaxos", "pbft"))
    assert "drift-at-bound" in raft and "byzantine-leader" not in raft  # leases, no liars
    assert "drift-at-bound" not in epaxos and "byzantine-leader" not in epaxos
    assert "byzantine-leader" in pbft and "drift-at-bound" not in pbft
    assert {"link-cut", "slow-replies"} <= raft & epaxos & pbft
    # Racing recoveries only where the protocol declares explicit-prepare recovery events.
    assert "recovery-race" in epaxos and "recovery-race" not in raft | pbft


def _first(protocol: str, nemesis: str, nodes: int) -> int:
    return next(s for s in range(1, 500)
                if nemesis in explore.generate(protocol, nodes, s)[0].description)  # fmt: skip


def test_drift_at_bound_stays_inside_the_bound_it_sets() -> None:
    seed = _first("raft", "drift-at-bound", 3)
    sc, _ = explore.generate("raft", 3, seed)
    bound = sc.options["max_drift"]
    drifts = [s.fault for s in sc.steps if s.fault["fault"] == "clock"]
    assert drifts
    for f in drifts:
        d = f["drift"]
        # fast clocks within the bound; a slow leader no slower than 1/(1-d) <= 1 + bound
        assert (0 <= d < bound) or (d < 0 and 1 / (1 + d) <= 1 + bound), f


def test_byzantine_leader_has_one_liar_for_the_whole_run() -> None:
    seed = _first("pbft", "byzantine-leader", 4)
    sc, director = explore.generate("pbft", 4, seed)
    assert director is None
    liars = {s.fault["node"] for s in sc.steps if s.fault["fault"] == "byzantine"}
    modes = [s.fault["mode"] for s in sc.steps if s.fault["fault"] == "byzantine"]
    assert len(liars) == 1 and liars <= {"r0", "r1", "r2", "r3"}
    assert modes[-1] == "honest" and len(set(modes) - {"honest"}) >= 2


def test_late_replies_leave_a_schedule_that_replays_without_the_director() -> None:
    seed = _first("raft", "slow-replies", 3)
    sc, director = explore.generate("raft", 3, seed)
    assert director is not None and sc.options["pre_vote"] is False
    sc.options["mutate"] = "stale-reply"
    found = explore.check(sc, director)
    # The first such run (seed 20 today) counts a held vote of an older term: two leaders.
    assert "split-brain" in found.kinds and found.scenario is not None
    faults = {f["fault"] for _, f in director.steps}
    assert {"isolate", "delay", "partition", "heal"} <= faults
    again = explore.check(found.scenario)
    assert again.kinds == found.kinds


def test_recovery_race_gives_two_recoveries_different_subsets_and_replays_without_it() -> None:
    seed = _first("epaxos", "recovery-race", 3)
    sc, director = explore.generate("epaxos", 3, seed)
    assert director is not None and sc.workload and sc.workload["target"] == "any"
    clean = explore.check(sc, director)
    assert clean.kinds == [], clean.first  # correct EPaxos: the vote ballots tell them apart
    steps = [f for _, f in director.steps]
    # Each attempt: what L hears cut, then what A sends, A cut off, then what B sends.
    oneway = [f for f in steps if f.get("oneway")]
    assert len(oneway) >= 3 and {"isolate", "heal"} <= {f["fault"] for f in steps}
    sc, director = explore.generate("epaxos", 3, seed)
    sc.options["mutate"] = "single-ballot"
    found = explore.check(sc, director)
    # The first such run (seed 19 today): A's old X committed beside B's Y.
    assert "divergence" in found.kinds and found.scenario is not None
    again = explore.check(found.scenario)
    assert again.kinds == found.kinds


@pytest.mark.parametrize("liar", ["r0", "r2"])  # the primary, a backup
def test_a_forgers_certificates_fool_only_replicas_that_skip_verification(liar: str) -> None:
    for mutate in ("skip-verify", ""):
        net = net_for(mutate, seed=1)
        net.set_byzantine(liar, "forge")
        for i in range(6):
            put_all(net, f"k{i}", str(i), client=f"c{i}")
        net.run_for(1.5)
        found = kinds(net)
        if mutate:
            assert found and found <= declared("pbft", "skip-verify"), found
        else:
            assert found == set(), net.violations
            drops = sum(net.status(r)["drops"].get("bad_commit_proof", 0)
                        for r in net.ids if r != liar)  # fmt: skip
            assert drops > 0  # the forgeries were sent, and dropped
