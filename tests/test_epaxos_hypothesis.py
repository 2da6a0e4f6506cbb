"""Random schedules against EPaxos's safety, with Hypothesis.

Each example is a cluster of 3 or 5 replicas and a list of steps: partitions (both ways
and one way), message loss, reordering and duplication, crashes (some in the middle of a
write) and restarts, writes through random replicas on a few keys, and time passing.
After every step:

- the conflict-order invariant: the k-th command applied on a key is the same at every
  replica (checked by the network as it runs, `ordering = "per_key"`);
- every instance committed at two replicas (live or on disk) has the same attributes.

At the end the network is healed and every replica restarted: a new write must commit and
execute everywhere, and all replicas must hold the same key-value state.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.simnet import SimNet
from tests.epaxos_helpers import agreement_problems, make_net

NODE = st.integers(0, 4)
STEP = st.one_of(
    st.tuples(st.just("run"), st.floats(0.001, 0.6)),
    st.tuples(st.just("write"), NODE, st.integers(0, 2)),
    st.tuples(st.just("burst"), NODE, st.integers(0, 2)),
    st.tuples(st.just("partition"), st.sets(NODE)),
    st.tuples(st.just("cut"), NODE, NODE),
    st.tuples(st.just("heal"), st.just(0)),
    st.tuples(st.just("loss"), st.sampled_from([0.0, 0.1, 0.3])),
    st.tuples(st.just("reorder"), st.booleans()),
    st.tuples(st.just("crash"), NODE, st.booleans()),
    st.tuples(st.just("restart"), NODE),
)


def apply_step(net: SimNet, step: tuple, counter: list[int]) -> None:
    kind, *args = step
    ids = net.ids
    if kind in ("write", "burst"):
        for _ in range(1 if kind == "write" else 6):
            target = ids[
                (args[0] + counter[0]) % len(ids) if kind == "burst" else args[0] % len(ids)
            ]
            if net.nodes[target].alive:
                counter[0] += 1
                net.put(target, f"k{args[1]}", str(counter[0]))
    elif kind == "run":
        net.run_for(args[0])
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
    elif kind == "reorder":
        net.reorder = args[0]  # links stop being FIFO, and some messages arrive twice
        net.duplicate = 0.1 if args[0] else 0.0
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
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**16),
    n=st.sampled_from([3, 5]),
    thrifty=st.booleans(),
    steps=st.lists(STEP, max_size=40),
)
def test_random_schedules_keep_epaxos_safe_and_live(
    seed: int, n: int, thrifty: bool, steps: list[tuple]
) -> None:
    net = make_net(n, seed=seed, thrifty=thrifty, max_inflight=4, batch=4)
    counter = [0]
    for step in steps:
        apply_step(net, step, counter)
        net.check()
        problems = agreement_problems(net)
        assert not problems, problems

    # Liveness once the faults are gone.
    net.heal()
    net.restart_all()
    rid = net.put(net.ids[0], "k0", "final")
    assert net.run_until(lambda: net.reply_for(rid) is not None, 5.0), "final write unanswered"
    assert net.run_until(
        lambda: all(rid in {c.request_id for _, _, c in net.applied(i)} for i in net.ids),
        3.0,
    ), "final write not executed everywhere"
    # Whatever else was left undecided gets recovered; then every state agrees.
    assert net.run_until(
        lambda: len({str(sorted(net.kv(i).items())) for i in net.ids}) == 1, 5.0
    ), {i: net.kv(i) for i in net.ids}
    net.check()
    assert agreement_problems(net) == []
