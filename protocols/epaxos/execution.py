"""Executing committed instances: dependency graph, Tarjan's SCCs, order inside a component.

An instance executes once everything it (transitively) depends on is committed. The
committed instances reachable from it form a graph whose strongly connected components
Tarjan's algorithm finds sinks first, i.e. in reverse topological order: exactly the order
to execute them in. Inside a component, instances go by (seq, replica, instance number).
Every replica has the same committed attributes, hence the same graph, hence the same order
of interfering commands.

Dependencies are per replica: deps[q] = j makes an instance depend on every instance of q
numbered up to j (those not executed yet). Each instance would then have an edge to every
one of them, and when a large component waits for one undecided instance (every command on
one key, a paused replica), each member scans its whole range again: quadratic, seconds of
CPU for a few thousand instances, long enough for peers to start recoveries. So the graph
goes through prefix nodes: P(q, j), "q's instances up to j", has an edge to (q, j) and one
to P(q, j - 1), and an instance has one edge per replica, to P(q, deps[q]). Paths between
instances are the same as with direct edges, so the components' instances and the order
are too, and a traversal is linear in what it visits.

The traversal is iterative (no recursion limit on long chains). When it meets an instance
that is not committed (or not even known), it stops there and reports it: the caller waits
for that instance to commit (never polls) and recovers it if it stays undecided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from protocols.epaxos.instances import Instance, InstanceId
from protocols.epaxos.messages import COMMITTED

# A node of the traversal: an instance id (q, j) with q >= 0, or the prefix node P(q, j)
# as (-1 - q, j).
Node = tuple[int, int]


def prefix(q: int, j: int) -> Node:
    return (-1 - q, j)


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
        # Nodes found waiting on an uncommitted instance: a later traversal reaching them
        # stops at once instead of walking the whole blocked region again.
        self.blocked_on: dict[Node, InstanceId] = {}

    def _waits(self, node: Node) -> None:
        """Raise Blocked if `node` is known to wait on an instance still undecided."""
        blocker = self.blocked_on.get(node)
        if blocker is None:
            return
        b = self.instances.get(blocker)
        executed = blocker[1] <= self.floor[blocker[0]]  # (and maybe compacted away since)
        if not executed and (b is None or b.status != COMMITTED):
            raise Blocked(blocker)
        del self.blocked_on[node]

    def _edges(self, node: Node) -> Iterator[Node]:
        a, j = node
        floor = self.floor
        if a >= 0:  # an instance: one edge per replica it depends on
            for q, hi in enumerate(self.instances[node].deps):
                if hi > floor[q]:
                    p = prefix(q, hi)
                    self._waits(p)
                    yield p
            return
        q = -1 - a  # P(q, j): instance (q, j), then the rest of the prefix
        if j <= floor[q]:
            return  # executed meanwhile, all of it
        w = self.instances.get((q, j))
        if w is None or w.status != COMMITTED:
            raise Blocked((q, j))
        if not w.executed:
            self._waits(w.id)
            yield w.id
        if j - 1 > floor[q]:
            p = prefix(q, j - 1)
            self._waits(p)
            yield p

    def _executed(self, node: Node) -> bool:
        a, j = node
        if a >= 0:
            return self.instances[node].executed
        return j <= self.floor[-1 - a]

    def run(self, start: Instance, execute: Callable[[Instance], None]) -> InstanceId | None:
        """Execute `start` and everything it depends on, calling `execute` in order.
        Returns the uncommitted instance it had to stop at, or None when all is done."""
        if start.executed or start.status != COMMITTED:
            return None
        counter = 0
        index: dict[Node, int] = {}
        low: dict[Node, int] = {}
        stack: list[Node] = []
        on_stack: set[Node] = set()
        work: list[tuple[Node, Iterator[Node]]] = []

        def visit(v: Node) -> None:
            nonlocal counter
            index[v] = low[v] = counter
            counter += 1
            stack.append(v)
            on_stack.add(v)
            work.append((v, self._edges(v)))

        visit(start.id)
        try:
            while work:
                v, edges = work[-1]
                descended = False
                for w in edges:
                    if self._executed(w):
                        continue  # executed by an earlier component of this traversal
                    if w not in index:
                        visit(w)
                        descended = True
                        break
                    if w in on_stack:
                        low[v] = min(low[v], index[w])
                if descended:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    component: list[Instance] = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        if w[0] >= 0:
                            component.append(self.instances[w])
                        if w == v:
                            break
                    # Sinks come first; everything a component depends on is executed.
                    component.sort(key=lambda i: (i.seq, i.replica, i.inum))
                    for inst in component:
                        self._mark(inst)
                        execute(inst)
        except Blocked as b:
            # Every node still on Tarjan's stack reaches the blocker: those on the path
            # through it, and those waiting to join a component rooted on that path. A
            # later traversal (another waiter re-run once this blocker commits) stops at
            # the first of them instead of walking the region again.
            for v in stack:
                if not self._executed(v):
                    self.blocked_on[v] = b.on
            return b.on
        return None

    def _mark(self, inst: Instance) -> None:
        inst.executed = True
        self.blocked_on.pop(inst.id, None)
        q = inst.replica
        f = self.floor[q]
        if inst.inum == f + 1:
            while (w := self.instances.get((q, f + 1))) is not None and w.executed:
                f += 1
                self.blocked_on.pop(prefix(q, f), None)  # below the floor: never reached
            self.floor[q] = f
