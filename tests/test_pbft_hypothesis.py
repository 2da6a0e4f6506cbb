"""Random schedules against PBFT's safety, with Hypothesis.

Each example is a cluster of 4 or 7 replicas, up to f of which are byzantine (each with a
random mode, which steps may change), and a list of steps: client requests (sent to every
replica), partitions (both ways and one way), message loss, crashes (some in the middle of
a write) and restarts, and time passing. After every step the network's check must pass:
no two honest replicas executed different requests at one sequence number.

At the end the network is healed, every crashed replica restarted and every byzantine
replica made honest, and a new request must get f+1 matching replies, and the replicas
that were never byzantine must agree on the key-value state: safety without liveness
would be too easy.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.pbft import PbftProtocol
from protocols.simnet import SimNet
from tests.pbft_helpers import put_all, wait_accepted

NODE = st.integers(0, 6)
MODE_NAMES = PbftProtocol.byzantine_modes
STEP = st.one_of(
    st.tuples(st.just("run"), st.floats(0.001, 0.5)),
    st.tuples(st.just("write"), st.integers(1, 12)),
    st.tuples(st.just("write"), st.integers(1, 3)),
    st.tuples(st.just("byzantine"), st.integers(0, 1), st.sampled_from(MODE_NAMES)),
    st.tuples(st.just("partition"), st.sets(NODE)),
    st.tuples(st.just("cut"), NODE, NODE),
    st.tuples(st.just("heal"), st.just(0)),
    st.tuples(st.just("loss"), st.sampled_from([0.0, 0.1, 0.3])),
    st.tuples(st.just("crash"), NODE, st.booleans()),
    st.tuples(st.just("restart"), NODE),
)
MODES = st.sampled_from(PbftProtocol.byzantine_modes)


def apply_step(net: SimNet, step: tuple, liars: list[tuple[str, str]], counter: list[int]) -> None:
    kind, *args = step
    ids = net.ids
    if kind == "run":
        net.run_for(args[0])
    elif kind == "write":  # a burst of requests from different clients, in flight together
        for _ in range(args[0]):
            counter[0] += 1
            put_all(net, f"k{counter[0] % 3}", str(counter[0]), client=f"c{counter[0] % 4}")
    elif kind == "byzantine":  # a liar changes its lie
        if args[0] < len(liars) and net.nodes[liars[args[0]][0]].alive:
            net.set_byzantine(liars[args[0]][0], args[1])
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
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**16),
    n=st.sampled_from([4, 4, 7]),
    interval=st.sampled_from([4, 16]),
    liar_picks=st.lists(st.tuples(NODE, MODES), max_size=2),
    steps=st.lists(STEP, max_size=30),
)
def test_random_schedules_with_up_to_f_byzantine_replicas_keep_pbft_safe(
    seed: int,
    n: int,
    interval: int,
    liar_picks: list[tuple[int, str]],
    steps: list[tuple],
) -> None:
    options = {"view_change_timeout": 0.1, "checkpoint_interval": interval, "window": 4 * interval}
    net = SimNet(PbftProtocol, n, seed=seed, options=options)
    f = (n - 1) // 3
    liars: list[tuple[str, str]] = []
    for i, mode in liar_picks:
        node = net.ids[i % n]
        if len(liars) < f and node not in {x for x, _ in liars}:
            liars.append((node, mode))
    for node, mode in liars:
        net.set_byzantine(node, mode)
    counter = [0]
    for step in steps:
        apply_step(net, step, liars, counter)
        net.check()

    # Liveness once the crash and network faults are gone: the liars (at most f) keep
    # lying, and the honest replicas must still agree on a view and make progress.
    net.heal()
    net.restart_all()
    rid = put_all(net, "final", "1", client="cf")
    answer = wait_accepted(net, rid, 40.0)
    assert answer[0] == "ok" and answer[2] == "1"
    honest = [i for i in net.ids if i not in net.byzantine]
    assert net.run_until(lambda: all(net.kv(i) == net.kv(honest[0]) for i in honest), 10.0), {
        i: net.status(i) for i in honest
    }
    assert net.kv(honest[0]).get("final") == "1"
    net.check()


def random_steps(rng: random.Random, count: int) -> list[tuple]:
    """A schedule like the Hypothesis one, drawn from a seeded generator."""
    steps: list[tuple] = []
    for _ in range(count):
        kind = rng.choice(["run", "write", "write", "partition", "cut", "heal", "loss", "crash",
                           "restart"])  # fmt: skip
        steps.append({
            "run": lambda: ("run", rng.uniform(0.01, 0.5)),
            "write": lambda: ("write", rng.randrange(1, 12)),
            "partition": lambda: ("partition", set(rng.sample(range(7), rng.randrange(1, 4)))),
            "cut": lambda: ("cut", rng.randrange(7), rng.randrange(7)),
            "heal": lambda: ("heal", 0),
            "loss": lambda: ("loss", rng.choice([0.0, 0.1, 0.3])),
            "crash": lambda: ("crash", rng.randrange(7), rng.random() < 0.3),
            "restart": lambda: ("restart", rng.randrange(7)),
        }[kind]())  # fmt: skip
    return steps


# Schedules that once left the honest replicas waiting in different views for good (a
# silent liar, one replica that escalated while cut off, the others never hearing its
# view-change for theirs): they must meet in one view again once the network heals.
@pytest.mark.parametrize("seed", [31, 113, 299])
def test_honest_replicas_scattered_over_views_meet_again(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([4, 4, 7])
    options = {"view_change_timeout": 0.1, "checkpoint_interval": 16, "window": 64}
    net = SimNet(PbftProtocol, n, seed=seed, options=options)
    liars = [
        (x, rng.choice(PbftProtocol.byzantine_modes)) for x in rng.sample(net.ids, (n - 1) // 3)
    ]
    for node, mode in liars:
        net.set_byzantine(node, mode)
    counter = [0]
    for step in random_steps(rng, rng.randrange(10, 60)):
        apply_step(net, step, liars, counter)
        net.check()
    net.heal()
    net.loss = 0.0
    net.restart_all()
    answer = wait_accepted(net, put_all(net, "final", "1", client="cf"), 40.0)
    assert answer[0] == "ok"
    net.check()
