"""Linearizability of the kv history: is there one order of the operations, consistent with
real time, in which a single register per key explains every result?

The model, per key: put sets the value; get returns the current value (None before any
write); cas(expected, value) takes effect iff the current value equals `expected`. A fail
operation did not happen and is dropped; an info operation may have happened at any time
after its invoke, or never.

Search (Wing & Gong, with Lowe's memoisation, as in Porcupine): keys are checked apart
(P-compositionality: a history is linearizable iff each key's is). Each key's invokes and
returns sit in one time-ordered linked list; a DFS linearizes the first call that the model
accepts, lifting it and its return out of the list, and backtracks when it reaches the
return of an operation it has not linearized yet. A cache of (set of linearized ops as an
int bitset, model value) prunes every configuration already explored. Info operations get
an infinite return, and once every finite return is behind us the rest may be left out.

Two sound reductions before the search keep info operations from blowing it up:

- an info write whose value no remaining operation ever observes (no get reads it, no cas
  expects it) is dropped: taking effect or not, nothing can tell, so a linearization
  with it exists iff one without it does. This repeats until nothing more drops;
- an info write that is the only writer of a value some required operation observes must
  have taken effect before that observer returned, so it becomes required with that return
  time (repeated, since it may in turn observe another info write's value).
An info get observes nothing anyone can check and is dropped too.

On failure the evidence is the window where the search got furthest: the last operations
it linearized, the model value there, the operations pending at that point, and the one
whose return it could not get past.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import msgspec

from labctl.checkers.base import Checker, Violation
from labctl.checkers.history import HistoryPairer, Operation

KV_OPS = frozenset({"put", "get", "cas"})
_PUT, _GET, _CAS = 0, 1, 2
_KIND = {"put": _PUT, "get": _GET, "cas": _CAS}
CONTEXT = 3  # linearized operations shown before the stuck point


class KeyResult(msgspec.Struct):
    key: str
    status: str  # ok | violation | unknown (the step budget ran out)
    ops: int  # operations searched, after the reductions
    steps: int
    violation: Violation | None = None


def check_operations(ops: Iterable[Operation], budget: int | None = None) -> dict[str, KeyResult]:
    """Check every key's kv operations (others are ignored); results by key, sorted."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for o in ops:
        if o.op in KV_OPS:
            by_key[o.key].append(o)
    return {key: check_key(key, by_key[key], budget) for key in sorted(by_key)}


def check_history(
    records: Iterable[Mapping[str, Any]], budget: int | None = None
) -> list[Violation]:
    """The violations in a list of history.jsonl records."""
    pairer = HistoryPairer()
    for rec in records:
        pairer.add(rec)
    results = check_operations(pairer.operations(), budget)
    return [r.violation for r in results.values() if r.violation is not None]


def check_key(key: str, ops: list[Operation], budget: int | None = None) -> KeyResult:
    """Check one key's operations against the register model."""
    kept, ret = _reduce(ops)
    search = _Search(kept, ret)
    outcome = search.run(budget)
    if outcome is None:
        return KeyResult(key, "unknown", len(kept), search.steps)
    if outcome:
        return KeyResult(key, "ok", len(kept), search.steps)
    return KeyResult(key, "violation", len(kept), search.steps, search.violation(key))


class LinearizabilityChecker(Checker):
    """Collects the history live (cheaply); searches only at `finish()`."""

    reads_history: ClassVar[bool] = True

    ONLINE_BUDGET = 200_000  # search steps per key in a live check; "unknown" waits for the end

    def __init__(self, budget: int | None = None) -> None:
        super().__init__()
        self.budget = budget
        self.pairer = HistoryPairer()
        self.results: dict[str, KeyResult] = {}
        self.dirty: set[str] = set()  # keys with completions since the last live check
        self.reported: dict[str, Violation] = {}  # keys already found non-linearizable live

    def on_history(self, rec: Mapping[str, Any]) -> list[Violation]:
        done = len(self.pairer.done)
        self.pairer.add(rec)
        if len(self.pairer.done) > done:
            self.dirty.add(self.pairer.done[-1].key)
        return []

    def check_online(self) -> list[Violation]:
        """Search the keys that changed, with the operations still open counted as info.

        Sound on a prefix: an open operation may or may not have happened, at any time
        after its invoke, which is all the finished history could say about it too; and
        completions only add constraints, so a violation found now stays a violation."""
        keys = self.dirty - self.reported.keys()
        self.dirty = set()
        if not keys:
            return []
        by_key: dict[str, list[Operation]] = defaultdict(list)
        for o in self.pairer.operations():
            if o.key in keys and o.op in KV_OPS:
                by_key[o.key].append(o)
        found = []
        for key in sorted(by_key):
            result = check_key(key, by_key[key], self.ONLINE_BUDGET)
            if result.violation is not None:
                self.reported[key] = result.violation
                found.append(result.violation)
        return found

    def finish(self) -> list[Violation]:
        self.malformed += self.pairer.malformed
        self.results = check_operations(self.pairer.operations(), self.budget)
        return [
            r.violation
            for key, r in self.results.items()
            if r.violation is not None and key not in self.reported
        ]

    @property
    def unknown_keys(self) -> list[str]:
        return [k for k, r in self.results.items() if r.status == "unknown"]


# -- reductions ------------------------------------------------------------------------------


def _written(o: Operation) -> str:
    return o.value if o.value is not None else ""  # the state machine stores `value or ""`


_NOTHING: Any = object()  # what a put observes


def _observed(o: Operation) -> Any:
    """The value an operation needs the register to hold (None: absent), or _NOTHING."""
    if o.op == "get":
        return o.value
    if o.op == "cas":
        return o.expected
    return _NOTHING


def _reduce(ops: list[Operation]) -> tuple[list[Operation], list[float]]:
    """The operations the search needs, each with its return time (inf: optional)."""
    alive = [o for o in ops if o.status == "ok" or (o.status == "info" and o.op != "get")]
    kept = _drop_unobserved_info(alive)
    return kept, _due_times(kept)


def _drop_unobserved_info(ops: list[Operation]) -> list[Operation]:
    """Without the info writes whose value nothing left observes.

    Repeated to a fixpoint: dropping an info cas can leave the info write whose value it
    expected unobserved in turn.
    """
    observers: dict[Any, int] = defaultdict(int)
    info_writers: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(ops):
        if (v := _observed(o)) is not _NOTHING:
            observers[v] += 1
        if o.status == "info":
            info_writers[_written(o)].append(i)
    dropped = [False] * len(ops)

    def unobserved(i: int) -> bool:
        o = ops[i]
        own = 1 if o.op == "cas" and o.expected == _written(o) else 0  # not its own observer
        return observers[_written(o)] - own <= 0

    candidates = [i for ids in info_writers.values() for i in ids]
    while candidates:
        i = candidates.pop()
        if dropped[i] or not unobserved(i):
            continue
        dropped[i] = True
        if (v := _observed(ops[i])) is not _NOTHING:
            observers[v] -= 1
            if isinstance(v, str):
                candidates.extend(info_writers.get(v, ()))
    return [o for i, o in enumerate(ops) if not dropped[i]]


def _due_times(ops: list[Operation]) -> list[float]:
    """Each operation's return time: its completion, inf for an optional info write, or,
    for an info write that is the only writer of a value a required operation observes,
    that observer's return (it must have happened before it). Repeated to a fixpoint, as a
    newly required info cas observes a value in turn."""
    inf = math.inf
    ret = [
        max(o.complete_t, o.invoke_t) if o.status == "ok" and o.complete_t is not None else inf
        for o in ops
    ]
    writers: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(ops):
        if o.op != "get":
            writers[_written(o)].append(i)
    due: dict[Any, float] = {}  # observed value -> earliest return of a required observer
    for i, o in enumerate(ops):
        v = _observed(o)
        if ret[i] < inf and v is not _NOTHING:
            due[v] = min(due.get(v, inf), ret[i])
    values = [v for v in due if isinstance(v, str)]
    while values:
        v = values.pop()
        ids = writers.get(v, [])
        if len(ids) != 1 or ops[ids[0]].status != "info":
            continue
        i = ids[0]
        cap = max(due[v], ops[i].invoke_t)
        if cap >= ret[i]:
            continue
        ret[i] = cap
        w = _observed(ops[i])
        if w is not _NOTHING and cap < due.get(w, inf):
            due[w] = cap
            if isinstance(w, str):
                values.append(w)
    return ret


# -- search ----------------------------------------------------------------------------------


class _Search:
    def __init__(self, ops: list[Operation], ret: list[float]) -> None:
        self.ops = ops
        self.ret = ret
        self.steps = 0
        # The furthest point: (depth, last linearized op ids, pending op ids, stuck op, value)
        self.best: tuple[int, list[int], list[int], int, str | None] | None = None

    def run(self, budget: int | None) -> bool | None:
        """True if linearizable, False if not, None if the budget ran out first."""
        ops, ret = self.ops, self.ret
        n = len(ops)
        if n == 0:
            return True
        kind = [_KIND[o.op] for o in ops]
        val = [o.value if o.op == "get" else _written(o) for o in ops]
        exp = [o.expected for o in ops]
        optional = [r == math.inf for r in ret]
        # Entries 1..2n in time order; 0 is the head, 2n+1 the tail. At equal times calls
        # come first: operations that touch are treated as concurrent.
        order_key = [o.invoke_t for o in ops]
        order = sorted(
            [(order_key[i], 0, i) for i in range(n)] + [(ret[i], 1, i) for i in range(n)]
        )
        tail = 2 * n + 1
        ent_op = [0] * (tail + 1)
        is_call = [False] * (tail + 1)
        match = [0] * (tail + 1)
        call_entry = [0] * n
        for e, (_, is_ret, i) in enumerate(order, start=1):
            ent_op[e] = i
            if is_ret:
                match[call_entry[i]] = e
            else:
                is_call[e] = True
                call_entry[i] = e
        nxt = list(range(1, tail + 2))
        prv = list(range(-1, tail))

        # The set of linearized operations, kept small: required operations are numbered
        # in invoke order, `low` of them are all linearized and `rest` holds the bits of
        # the ones above; optional ones (which may stay out for good) have their own bits.
        # So a memo entry costs the width of the concurrency window, not of the history.
        pos = [0] * n
        required = sorted((i for i in range(n) if not optional[i]), key=lambda i: order_key[i])
        for j, i in enumerate(required):
            pos[i] = j
        for j, i in enumerate(i for i in range(n) if optional[i]):
            pos[i] = j
        cache: set[tuple[int, int, int, str | None]] = set()
        # (call entry, and the search's state before it: value, low, rest, optional bits)
        stack: list[tuple[int, str | None, int, int, int]] = []
        state: str | None = None
        low = rest = opt_bits = 0
        steps = 0
        limit = budget if budget is not None else -1
        e = nxt[0]
        try:
            while nxt[0] != tail:
                steps += 1
                if steps == limit:
                    return None
                if is_call[e]:
                    i = ent_op[e]
                    k = kind[i]
                    if k == _PUT:
                        ok, new = True, val[i]
                    elif k == _GET:
                        ok, new = state == val[i], state
                    else:
                        ok, new = state == exp[i], val[i]
                    if ok:
                        if optional[i]:
                            n_low, n_rest, n_opt = low, rest, opt_bits | (1 << pos[i])
                        else:
                            n_low, n_rest, n_opt = low, rest | (1 << (pos[i] - low)), opt_bits
                            if n_rest & 1:  # the lowest pending one: slide past the run
                                run = (~n_rest & (n_rest + 1)).bit_length() - 1
                                n_low, n_rest = low + run, n_rest >> run
                        memo = (n_low, n_rest, n_opt, new)
                        if memo not in cache:
                            cache.add(memo)
                            stack.append((e, state, low, rest, opt_bits))
                            state, low, rest, opt_bits = new, n_low, n_rest, n_opt
                            # lift the call and its return out of the list
                            r = match[e]
                            nxt[prv[e]] = nxt[e]
                            prv[nxt[e]] = prv[e]
                            nxt[prv[r]] = nxt[r]
                            prv[nxt[r]] = prv[r]
                            e = nxt[0]
                            continue
                    e = nxt[e]
                    continue
                # The return of an operation not linearized yet.
                if optional[ent_op[e]]:
                    return True  # only optional (info) operations are left: leave them out
                self._note_stuck(len(stack), stack, e, state, nxt, is_call, ent_op)
                if not stack:
                    return False
                e, state, low, rest, opt_bits = stack.pop()
                r = match[e]
                prv[nxt[r]] = r
                nxt[prv[r]] = r
                prv[nxt[e]] = e
                nxt[prv[e]] = e
                e = nxt[e]
            return True
        finally:
            self.steps = steps

    def _note_stuck(
        self,
        depth: int,
        stack: list[tuple[int, str | None, int, int, int]],
        e: int,
        state: str | None,
        nxt: list[int],
        is_call: list[bool],
        ent_op: list[int],
    ) -> None:
        """Remember the deepest point (the smallest pending window among equals)."""
        best = self.best
        if best is not None and depth < best[0]:
            return
        pending = []
        x, stuck = nxt[0], ent_op[e]
        while x != e:
            if is_call[x] and ent_op[x] != stuck:
                pending.append(ent_op[x])
            x = nxt[x]
        if best is not None and depth == best[0] and len(pending) >= len(best[2]):
            return
        done = [ent_op[entry[0]] for entry in stack[-CONTEXT:]]
        self.best = (depth, done, pending, stuck, state)

    def violation(self, key: str) -> Violation:
        assert self.best is not None  # run() returned False, so it got stuck somewhere
        depth, done, pending, stuck, state = self.best
        ops = self.ops
        blocked = ops[stuck]
        window = [ops[i] for i in pending] + [blocked]
        processes = sorted({o.process for o in window if o.process is not None})
        t = self.ret[stuck]
        if blocked.op == "get":
            what = f"get {blocked.request_id} read {blocked.value!r}"
        elif blocked.op == "cas":
            what = f"cas {blocked.request_id} expected {blocked.expected!r}"
        else:
            what = f"put {blocked.request_id}"  # cannot happen: a put always fits
        return Violation(
            kind="nonlinearizable",
            t=t,
            nodes=processes,
            detail=(
                f"key {key!r}: {what}, which no linearization allows "
                f"(the register held {state!r} after {depth} operations)"
            ),
            evidence={
                "key": key,
                "value": state,
                "linearized": [ops[i].summary() for i in done],
                "pending": [ops[i].summary() for i in pending],
                "stuck": blocked.summary(),
            },
        )
