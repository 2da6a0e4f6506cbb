"""Random schedules against Raft's safety properties (paper Figure 3), with Hypothesis.

Each example is a cluster of 3 or 5 nodes and a list of steps: partitions (both ways and
one way), message loss, crashes (some in the middle of a write) and restarts, client
writes and reads, and time passing. After every step:

- election safety: at most one leader per term (checked by the network as it runs);
- state machine safety: no two nodes apply different commands at one index (likewise);
- log matching, agreement on committed entries, and leader completeness (invariants.py);

and at the end that every read answered "ok" (log, quorum or lease) returned what the
history holds at its index and saw every write acknowledged before it was sent.

At the end the network is healed and every node restarted, and the cluster must commit a
new write everywhere: safety without liveness would be too easy.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.raft import RaftProtocol
from protocols.raft.invariants import check_all
from protocols.raft.messages import HardState
from protocols.simnet import SimNet

NODE = st.integers(0, 4)
STEP = st.one_of(
    st.tuples(st.just("run"), st.floats(0.001, 0.6)),
    st.tuples(st.just("write"), NODE),
    st.tuples(st.just("write_to_leader"), st.just(0)),
    st.tuples(st.just("bundle"), st.integers(2, 12)),  # a client's bundle, to the leader
    st.tuples(st.just("read"), NODE, st.sampled_from(["log", "quorum", "lease"])),
    st.tuples(st.just("partition"), st.sets(NODE)),
    st.tuples(st.just("cut"), NODE, NODE),
    st.tuples(st.just("heal"), st.just(0)),
    st.tuples(st.just("loss"), st.sampled_from([0.0, 0.1, 0.3])),
    st.tuples(st.just("crash"), NODE, st.booleans()),
    st.tuples(st.just("restart"), NODE),
)


def highest_term(net: SimNet) -> int:
    """The highest term any node holds or has persisted: an entry committed in term T is
    applied by a node whose term is at least T, after persisting it."""
    high = 0
    for name, node in net.nodes.items():
        if node.alive:
            high = max(high, net.proto(name).term)  # type: ignore[attr-defined]
        terms = [r.term for r in node.disk if isinstance(r, HardState)]
        high = max(high, *terms) if terms else high
    return high


def apply_step(net: SimNet, step: tuple, counter: list[int]) -> None:
    kind, *args = step
    ids = net.ids
    if kind == "run":
        net.run_for(args[0])
    elif kind in ("write", "write_to_leader"):
        target = ids[args[0] % len(ids)] if kind == "write" else net.leader()
        if target is not None and net.nodes[target].alive:
            counter[0] += 1
            net.put(target, f"k{counter[0] % 3}", str(counter[0]))
    elif kind == "bundle":
        target = net.leader()
        if target is not None:
            commands = []
            for _ in range(args[0]):
                counter[0] += 1
                commands.append(net.command("put", key=f"k{counter[0] % 3}", value=str(counter[0])))
            net.request_bundle(target, commands)
    elif kind == "read":
        target = ids[args[0] % len(ids)]
        if net.nodes[target].alive:
            net.get(target, "k0", args[1])
    elif kind == "partition":
        side = {ids[i % len(ids)] for i in args[0]}
        net.partition(side, [i for i in ids if i not in side])
    elif kind == "cut":
        a, b = ids[args[0] % len(ids)], ids[args[1] % len(ids)]
        if a != b:
            net.cut(a, b, oneway=True)
    elif kind == "heal":
        net.heal()
    elif kind == "loss":
        net.loss = args[0]
    elif kind == "crash":
        target = ids[args[0] % len(ids)]
        if net.nodes[target].alive:
            net.crash(target, mid_write=args[1])
    elif kind == "restart":
        target = ids[args[0] % len(ids)]
        if not net.nodes[target].alive:
            net.restart(target)
    net.run_for(0.01)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**16),
    n=st.sampled_from([3, 5]),
    threshold=st.sampled_from([4, 1000]),
    catch_up=st.sampled_from([0, 3]),
    pre_vote=st.booleans(),
    check_quorum=st.booleans(),
    steps=st.lists(STEP, max_size=40),
)
def test_random_schedules_keep_raft_safe(
    seed: int,
    n: int,
    threshold: int,
    catch_up: int,
    pre_vote: bool,
    check_quorum: bool,
    steps: list[tuple],
) -> None:
    options = {
        "snapshot_threshold": threshold,
        "catch_up_entries": catch_up,
        "pre_vote": pre_vote,
        "check_quorum": check_quorum,
        "max_inflight": 4,  # small windows and batches exercise flow control
        "max_batch": 8,
    }
    net = SimNet(RaftProtocol, n, seed=seed, options=options)
    committed: dict[int, tuple[int, int]] = {}
    counter = [0]
    for step in steps:
        apply_step(net, step, counter)
        net.check()
        high = highest_term(net)
        for index, (term, _) in net.applied_at.items():
            committed.setdefault(index, (term, high))
        live = {i: net.proto(i) for i in net.alive()}
        problems = check_all(live, committed)  # type: ignore[arg-type]
        assert not problems, problems

    # Liveness once the faults are gone.
    net.heal()
    net.restart_all()
    command = net.command("put", key="final", value="1")
    acked = False
    for _ in range(40):
        leader = net.agreed_leader()
        if leader is not None:
            net.request(leader, command)
        if net.run_until(
            lambda: any(r.status == "ok" for r in net.replies_for(command.request_id)), 0.3
        ):
            acked = True
            break
    assert acked, "no write committed after healing"
    assert net.run_until(lambda: all(net.kv(i).get("final") == "1" for i in net.ids), 3.0)
    net.check()
    assert not net.stale_reads()  # every read answered "ok" fits the history
