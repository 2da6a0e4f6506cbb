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


class CountingDict(dict):  # type: ignore[type-arg]
    """The instance space, counting lookups: the work a traversal does."""

    lookups = 0

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        CountingDict.lookups += 1
        return super().get(key, default)

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        CountingDict.lookups += 1
        return super().__getitem__(key)


def test_a_large_component_waiting_on_one_instance_executes_in_linear_work() -> None:
    # Every command on one key, every instance depending on the next one of every other
    # replica: one component of 2,000 instances, all waiting on r0's first instance (a
    # paused command leader). Per-instance ranges scanned again by every member were
    # quadratic: 1.3 s of CPU here, seconds in a lab, long enough for peers to start
    # recovering everything.
    n, per = 5, 400
    instances = CountingDict()
    for j in range(1, per + 1):
        for q in range(n):
            deps = tuple(min(per, j + 1) if r != q else j - 1 for r in range(n))
            instances[(q, j)] = committed(q, j, seq=j * n + q, deps=deps)
    first = instances[(0, 1)]
    first.status = PREACCEPTED
    ex = Executor(n, instances)
    order: list[tuple[int, int]] = []
    CountingDict.lookups = 0
    for inst in list(instances.values())[1:]:  # each commit tries, and waits
        assert ex.run(inst, lambda i: order.append(i.id)) == (0, 1)
    waiting = CountingDict.lookups
    first.status = COMMITTED
    CountingDict.lookups = 0
    assert ex.run(first, lambda i: order.append(i.id)) is None
    for inst in list(instances.values()):
        ex.run(inst, lambda i: order.append(i.id))
    total = n * per
    assert len(order) == total and len(set(order)) == total
    assert [instances[i].seq for i in order] == sorted(i.seq for i in instances.values())
    assert waiting < 20 * total, waiting  # the blocked region is not walked again
    assert CountingDict.lookups < 20 * total, CountingDict.lookups
