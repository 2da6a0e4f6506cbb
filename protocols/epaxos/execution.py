"""Executing committed instances: dependency graph, Tarjan's SCCs, order inside a component.

An instance executes once everything it (transitively) depends on is committed. The
committed instances reachable from it form a graph whose strongly connected components
Tarjan's algorithm finds sinks first, i.e. in reverse topological order: exactly the order
to execute them in. Inside a component, instances go by (seq, replica, instance number).
Every replica has the same committed attributes, hence the same graph, hence the same order
of interfering commands.

The traversal is iterative (no recursion limit on long chains). When it meets an instance
that is not committed (or not even known), it stops there and reports it: the caller waits
for that instance to commit (never polls) and recovers it if it stays undecided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from protocols.epaxos.instances import Instance, InstanceId
from protocols.epaxos.messages import COMMITTED


class Blocked(Exception):
    def __init__(self, on: InstanceId) -> None:
        self.on = on


class Executor:
    def __init__(self, n: int, instances: dict[InstanceId, Instance]) -> None:
        self.n = n
        self.instances = instances
        # Per replica, every instance numbered up to floor[q] is executed: dependency
        # ranges start above it, so they do not rescan a history already executed.
        self.floor = [0] * n
        # Instances found waiting on an uncommitted one: a later traversal reaching them
        # stops at once instead of walking the whole blocked region again.
        self.blocked_on: dict[InstanceId, InstanceId] = {}

    def _edges(self, v: Instance) -> Iterator[Instance]:
        instances = self.instances
        for q, hi in enumerate(v.deps):
            for j in range(self.floor[q] + 1, hi + 1):
                if q == v.replica and j == v.inum:
                    continue
                w = instances.get((q, j))
                if w is None or w.status != COMMITTED:
                    raise Blocked((q, j))
                if not w.executed:
                    blocker = self.blocked_on.get(w.id)
                    if blocker is not None:
                        b = instances.get(blocker)
                        if b is None or b.status != COMMITTED:
                            raise Blocked(blocker)
                        del self.blocked_on[w.id]
                    yield w

    def run(self, start: Instance, execute: Callable[[Instance], None]) -> InstanceId | None:
        """Execute `start` and everything it depends on, calling `execute` in order.
        Returns the uncommitted instance it had to stop at, or None when all is done."""
        if start.executed or start.status != COMMITTED:
            return None
        counter = 0
        index: dict[InstanceId, int] = {}
        low: dict[InstanceId, int] = {}
        stack: list[Instance] = []
        on_stack: set[InstanceId] = set()
        work: list[tuple[Instance, Iterator[Instance]]] = []

        def visit(v: Instance) -> None:
            nonlocal counter
            index[v.id] = low[v.id] = counter
            counter += 1
            stack.append(v)
            on_stack.add(v.id)
            work.append((v, self._edges(v)))

        visit(start)
        try:
            while work:
                v, edges = work[-1]
                descended = False
                for w in edges:
                    if w.executed:
                        continue  # executed by an earlier component of this traversal
                    if w.id not in index:
                        visit(w)
                        descended = True
                        break
                    if w.id in on_stack:
                        low[v.id] = min(low[v.id], index[w.id])
                if descended:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent.id] = min(low[parent.id], low[v.id])
                if low[v.id] == index[v.id]:
                    component: list[Instance] = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w.id)
                        component.append(w)
                        if w is v:
                            break
                    # Sinks come first; everything a component depends on is executed.
                    component.sort(key=lambda i: (i.seq, i.replica, i.inum))
                    for inst in component:
                        self._mark(inst)
                        execute(inst)
        except Blocked as b:
            for v, _ in work:
                if not v.executed:
                    self.blocked_on[v.id] = b.on
            return b.on
        return None

    def _mark(self, inst: Instance) -> None:
        inst.executed = True
        self.blocked_on.pop(inst.id, None)
        q = inst.replica
        if inst.inum == self.floor[q] + 1:
            f = inst.inum
            while (w := self.instances.get((q, f + 1))) is not None and w.executed:
                f += 1
            self.floor[q] = f
