"""EPaxos execution: dependency cycles run in one order everywhere (Tarjan SCCs, by seq
inside a component), long chains need no recursion, and execution waits for dependencies."""

from __future__ import annotations

from protocols.base import Command
from protocols.epaxos.execution import Executor
from protocols.epaxos.instances import Instance
from protocols.epaxos.messages import COMMITTED, PREACCEPTED
from tests.epaxos_helpers import agreement_problems, applied_ids, make_net, proto


def cmd(rid: str) -> tuple[Command, ...]:
    return (Command(request_id=rid, client="c", op="put", key="k", value=rid),)


def committed(replica: int, inum: int, seq: int, deps: tuple[int, ...]) -> Instance:
    return Instance(replica, inum, COMMITTED, cmds=cmd(f"{replica}.{inum}"), seq=seq, deps=deps)


def test_a_cycle_executes_by_seq_then_instance_id() -> None:
    a = committed(0, 1, seq=2, deps=(0, 1, 0))
    b = committed(1, 1, seq=1, deps=(1, 0, 1))
    c = committed(2, 1, seq=1, deps=(0, 1, 0))
    instances = {i.id: i for i in (a, b, c)}
    order: list[tuple[int, int]] = []
    assert Executor(3, instances).run(a, lambda i: order.append(i.id)) is None
    # One component {a, b, c}: seq 1 first (b before c by replica), then a.
    assert order == [(1, 1), (2, 1), (0, 1)]


def test_components_run_in_reverse_topological_order() -> None:
    a = committed(0, 1, seq=5, deps=(0, 1, 0))  # a -> b
    b = committed(1, 1, seq=1, deps=(0, 0, 1))  # b -> c
    c = committed(2, 1, seq=9, deps=(0, 0, 0))
    order: list[tuple[int, int]] = []
    Executor(3, {i.id: i for i in (a, b, c)}).run(a, lambda i: order.append(i.id))
    assert order == [(2, 1), (1, 1), (0, 1)]  # dependencies first, whatever their seq


def test_execution_waits_for_an_uncommitted_dependency() -> None:
    a = committed(0, 1, seq=2, deps=(0, 1, 0))
    b = Instance(1, 1, PREACCEPTED, cmds=cmd("b"), seq=1, deps=(0, 0, 0))
    instances = {i.id: i for i in (a, b)}
    ex = Executor(3, instances)
    order: list[tuple[int, int]] = []
    assert ex.run(a, lambda i: order.append(i.id)) == (1, 1)
    assert order == [] and not a.executed
    assert ex.run(a, lambda i: order.append(i.id)) == (1, 1)  # remembered, still blocked
    b.status = COMMITTED
    assert ex.run(b, lambda i: order.append(i.id)) is None
    assert ex.run(a, lambda i: order.append(i.id)) is None
    assert order == [(1, 1), (0, 1)]


def test_a_long_chain_needs_no_recursion() -> None:
    n = 20_000
    instances = {(0, j): committed(0, j, seq=j, deps=(j - 1,)) for j in range(1, n + 1)}
    order: list[int] = []
    ex = Executor(1, instances)
    assert ex.run(instances[(0, n)], lambda i: order.append(i.inum)) is None
    assert order == list(range(1, n + 1))
    assert ex.floor == [n]


def test_concurrent_conflicting_commands_form_a_cycle_executed_alike() -> None:
    # Fixed latency: r0's and r1's PreAccepts cross, so each leader's instance ends up
    # depending on the other's.
    net = make_net(3, seed=31, latency=(0.002, 0.002), thrifty=False)
    a = net.put("r0", "k", "a")
    b = net.put("r1", "k", "b")
    assert net.run_until(lambda: all(len(applied_ids(net, i)) == 2 for i in net.ids), 2.0)
    p = proto(net, "r2")
    ia, ib = p.instances[(0, 1)], p.instances[(1, 1)]
    assert ia.deps[1] >= 1 and ib.deps[0] >= 1  # a cycle
    orders = {tuple(applied_ids(net, i, "k")) for i in net.ids}
    assert len(orders) == 1 and set(next(iter(orders))) == {a, b}
    # Inside the component: lower seq first, ties by instance id.
    first = min((ia, ib), key=lambda i: (i.seq, i.replica, i.inum))
    assert next(iter(orders))[0] == (first.cmds or ())[0].request_id
    assert agreement_problems(net) == []
    net.check()
