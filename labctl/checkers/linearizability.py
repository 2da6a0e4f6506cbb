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
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import msgspec

import labctl.checkers.quiescent_cut as qc
from labctl.checkers.base import Checker, Violation
from labctl.checkers.history import HistoryPairer, Operation
from labctl.checkers.quiescent_cut import START, Cut

KV_OPS = frozenset({"put", "get", "cas"})
_PUT, _GET, _CAS = 0, 1, 2
_KIND = {"put": _PUT, "get": _GET, "cas": _CAS}
CONTEXT = 3  # linearized operations shown before the stuck point


class Budget(msgspec.Struct, frozen=True):
    """What one key's search may spend before it gives up with "unknown" (None: no bound).

    `memory_mb` bounds the memo cache, the search's only growing structure, at an estimate
    of `CACHE_ENTRY_BYTES` per entry; `seconds` is wall time (so a loaded machine gives up
    sooner: an unknown verdict, never a wrong one)."""

    steps: int | None = None
    seconds: float | None = None
    memory_mb: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "seconds", "memory_mb"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"budget {name} must be a positive finite number, got {v!r}")


class KeyResult(msgspec.Struct):
    key: str
    status: str  # ok | violation | unknown (the budget ran out)
    ops: int  # operations searched, after the reductions
    steps: int
    violation: Violation | None = None
    reason: str = ""  # for unknown: the budget that ran out (steps | time | memory)

    def describe_unknown(self) -> str:
        return f"unknown for key {self.key!r} (budget: {self.reason})"


def check_operations(
    ops: Iterable[Operation],
    budget: Budget | int | None = None,
    deadline: float | None = None,
) -> dict[str, KeyResult]:
    """Check every key's kv operations (others are ignored); results by key, sorted.

    `budget` bounds each key's search; `deadline` (time.monotonic()) all of them: a key
    searched after it gets a token slice, enough for an easy key only."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for o in ops:
        if o.op in KV_OPS:
            by_key[o.key].append(o)
    budget = _as_budget(budget)
    return {key: check_key(key, by_key[key], _until(budget, deadline)) for key in sorted(by_key)}


def check_history(
    records: Iterable[Mapping[str, Any]], budget: Budget | int | None = None
) -> list[Violation]:
    """The violations in a list of history.jsonl records."""
    pairer = HistoryPairer()
    for rec in records:
        pairer.add(rec)
    results = check_operations(pairer.operations(), budget)
    return [r.violation for r in results.values() if r.violation is not None]


def check_key(
    key: str, ops: list[Operation], budget: Budget | int | None = None, cut: Cut = START
) -> KeyResult:
    """Check one key's operations against the register model; with `cut`, the operations
    after a quiescent cut of its history (labctl/checkers/quiescent_cut.py), from the
    register value there, counted and described as if the prefix were still there."""
    kept, ret = _reduce(ops, cut)
    search = _Search(kept, ret, cut)
    outcome = search.run(budget)
    n = cut.ops + len(kept)
    if outcome is None:
        return KeyResult(key, "unknown", n, search.steps, reason=search.reason)
    if outcome:
        return KeyResult(key, "ok", n, search.steps)
    return KeyResult(key, "violation", n, search.steps, search.violation(key))


MIN_SLICE = 0.05  # s: what a key searched past the deadline still gets


def _as_budget(budget: Budget | int | None) -> Budget:
    return budget if isinstance(budget, Budget) else Budget(steps=budget)


def _until(budget: Budget, deadline: float | None) -> Budget:
    """`budget`, its time cut to what is left before `deadline`."""
    if deadline is None:
        return budget
    left = max(MIN_SLICE, deadline - time.monotonic())
    if budget.seconds is not None and budget.seconds <= left:
        return budget
    return msgspec.structs.replace(budget, seconds=left)


class LinearizabilityChecker(Checker):
    """Collects the history live (cheaply); searches the keys that changed when asked
    (`check_online`), and every key at `finish()`. Each key's history is cut at quiescent
    points as it grows (labctl/checkers/quiescent_cut.py), so what it holds and searches
    is the operations since its last cut, not the whole run."""

    reads_history: ClassVar[bool] = True

    # A live search per key; a key that runs out waits for the end (and is not searched
    # live again, so one hard key cannot take the supervisor's time pass after pass).
    ONLINE_BUDGET = Budget(steps=200_000, seconds=0.5, memory_mb=256)
    ONLINE_PASS = 1.0  # s: all keys of one live pass; the rest stay dirty for the next

    def __init__(self, budget: Budget | int | None = None, wall_clock: bool = True) -> None:
        super().__init__()
        self.budget = _as_budget(budget)
        # Without the wall clock (the simulator) a live search is bounded by steps and
        # memory alone, and a pass by nothing: what it finds depends on the history only.
        online = self.ONLINE_BUDGET
        self.online_budget = online if wall_clock else Budget(online.steps, None, online.memory_mb)
        self.online_pass: float | None = self.ONLINE_PASS if wall_clock else None
        self.pairer = HistoryPairer()
        self.results: dict[str, KeyResult] = {}
        self.dirty: set[str] = set()  # keys with completions since the last live check
        self.reported: dict[str, Violation] = {}  # keys already found non-linearizable live
        # key -> the time of the violation a live pass last found in it (the return of the
        # operation no linearization allows): reported only once the records have moved
        # HORIZON past that time and a search still finds it (a late invoke record can
        # explain a read that looked impossible).
        self.suspect: dict[str, float] = {}
        self.hard: set[str] = set()  # keys whose live search ran out of budget
        # key -> its kv operations since its last cut, in completion order
        self.history: dict[str, list[Operation]] = {}
        self.cuts: dict[str, Cut] = {}  # key -> its last quiescent cut
        self.next_try: dict[str, int] = {}  # key -> history length of the next cut attempt
        self.late: dict[str, int] = {}  # key -> operations that came invoked before its cut
        self.newest = -math.inf  # the latest record time seen
        self.compacted = 0  # operations dropped by cuts, for the summary

    def on_history(self, rec: Mapping[str, Any]) -> list[Violation]:
        pairer = self.pairer
        pairer.add(rec)
        t = rec.get("t")
        if t.__class__ in (int, float) and t > self.newest:  # type: ignore[operator]
            self.newest = float(t)  # type: ignore[arg-type]
        if not pairer.done:
            return []
        o = pairer.done.pop()  # one record completes at most one operation
        if o.op not in KV_OPS:
            return []
        key = o.key
        self.dirty.add(key)
        ops = self.history.setdefault(key, [])
        ops.append(o)
        cut = self.cuts.get(key)
        if cut is not None and o.invoke_t <= cut.t:
            self.late[key] = self.late.get(key, 0) + 1
        if len(ops) >= self.next_try.get(key, qc.TRY_EVERY):
            self._try_cut(key)
            self.next_try[key] = len(self.history[key]) + qc.TRY_EVERY
        return []

    def _open(self, keys: set[str] | None = None) -> dict[str, list[Operation]]:
        """The operations still open, as info ones, by key (of `keys`, or all)."""
        out: dict[str, list[Operation]] = defaultdict(list)
        for o in self.pairer.operations():  # `done` is kept empty: only the open ones
            if o.op in KV_OPS and (keys is None or o.key in keys):
                out[o.key].append(o)
        return out

    def _try_cut(self, key: str) -> None:
        """Cut `key`'s history at its latest quiescent point whose prefix ends in a known
        value, if that prefix is linearizable; else leave it whole. A key whose live
        search ran out of budget (`hard`) is cut too: the prefix's search is smaller, and
        once cut the key is searched live again."""
        if key in self.reported or key in self.suspect or key in self.late:
            return  # its history is the evidence, or its verdict will not be a search's
        ops = self.history[key]
        opened = self._open({key}).get(key, [])
        limit = min([self.newest - qc.HORIZON, *(o.invoke_t for o in opened)])
        cut = self.cuts.get(key, START)
        for t in qc.split_points(ops, limit):
            prefix = [o for o in ops if o.invoke_t <= t]
            kept, ret = _reduce(prefix, cut)
            if any(r == math.inf for r in ret):
                continue  # an info write stays optional: the end value is not known
            known, last = qc.last_writer(kept, ret)
            if known:
                break
        else:
            return
        search = _Search(kept, ret, cut)
        if search.run(self.online_budget) is not True:
            return  # a violation (check_online reports it) or out of budget: keep it all
        carried = {id(o) for o in prefix} - {id(o) for o in kept}
        # The prefix's info writes the search dropped (nothing in it observes them) may
        # still take effect later: they stay, with the operations after the cut.
        carried = {id(o) for o in prefix if o.status == "info" and o.op != "get"} & carried
        self.history[key] = [o for o in ops if o.invoke_t > t or id(o) in carried]
        self.compacted += len(ops) - len(self.history[key])
        tail = (*cut.tail, *(kept[i] for i in search.linearized))[-CONTEXT:]
        value, written = (cut.value, cut.written) if last is None else (_written(last), True)
        self.cuts[key] = Cut(t=t, value=value, written=written, ops=cut.ops + len(kept), tail=tail)
        if key in self.hard:
            self.hard.discard(key)
            self.dirty.add(key)  # what is left is searched live again

    def _check(self, key: str, ops: list[Operation], budget: Budget) -> KeyResult:
        if key in self.late:
            return KeyResult(key, "unknown", 0, 0, reason="late")
        return check_key(key, ops, budget, self.cuts.get(key, START))

    def check_online(self) -> list[Violation]:
        """Search the keys that changed, with the operations still open counted as info.

        Sound on a prefix: an open operation may or may not have happened, at any time
        after its invoke, which is all the finished history could say about it too; and
        completions only add constraints, so a violation found now stays a violation. But
        records reach the supervisor from many clients and are not in time order: a
        write's invoke can arrive after the reads that saw its value (seen: 50 ms late,
        under load, and 1.7 s in an overloaded soak). So a violation is reported only when
        the records have moved HORIZON past the violation's own time; a younger one is
        held as suspect and searched again then. The wait is the violation's, not the
        key's: with one client's records always late, every search of a key met another
        read explained a moment later, and a per-key timer reported whichever was current
        when it ran out."""
        keys = self.dirty - self.reported.keys() - self.hard
        keys |= {k for k, t in self.suspect.items() if self.newest >= t + qc.HORIZON}
        self.dirty = set()
        if not keys:
            return []
        opened = self._open(keys)
        found = []
        deadline = None if self.online_pass is None else time.monotonic() + self.online_pass
        for key in sorted(keys):
            ops = [*self.history.get(key, ()), *opened.get(key, ())]
            if not ops:
                continue
            if deadline is not None and time.monotonic() > deadline:
                self.dirty.add(key)  # next pass
                continue
            result = self._check(key, ops, self.online_budget)
            if result.status == "unknown":
                self.hard.add(key)
                self.suspect.pop(key, None)
            v = result.violation
            if v is None:
                self.suspect.pop(key, None)  # the late records explained it
            elif self.newest >= v.t + qc.HORIZON:
                self.suspect.pop(key, None)
                self.reported[key] = v
                found.append(v)
            else:
                self.suspect[key] = v.t
        return found

    def finish(self, deadline: float | None = None) -> list[Violation]:
        """The whole-run search; `deadline` (time.monotonic()) bounds all keys together."""
        self.malformed += self.pairer.malformed
        opened = self._open()
        for key, ops in opened.items():
            cut = self.cuts.get(key)
            if cut is not None and any(o.invoke_t <= cut.t for o in ops):
                self.late[key] = self.late.get(key, 0) + 1
        keys = sorted({*self.history, *opened})
        self.results = {
            key: self._check(
                key,
                [*self.history.get(key, ()), *opened.get(key, ())],
                _until(self.budget, deadline),
            )
            for key in keys
        }
        return [
            r.violation
            for key, r in self.results.items()
            if r.violation is not None and key not in self.reported
        ]

    @property
    def unknown_keys(self) -> list[str]:
        return [k for k, r in self.results.items() if r.status == "unknown"]

    @property
    def unknown(self) -> dict[str, str]:
        """key -> the budget its search ran out of."""
        return {k: r.reason for k, r in self.results.items() if r.status == "unknown"}


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


def _reduce(ops: list[Operation], cut: Cut = START) -> tuple[list[Operation], list[float]]:
    """The operations the search needs, each with its return time (inf: optional)."""
    alive = [o for o in ops if o.status == "ok" or (o.status == "info" and o.op != "get")]
    if all(o.status == "ok" for o in alive):  # the common case: nothing to reduce
        return alive, [o.complete_t if o.complete_t > o.invoke_t else o.invoke_t for o in alive]  # type: ignore[operator]
    kept = _drop_unobserved_info(alive)
    return kept, _due_times(kept, cut)


def _observations(ops: list[Operation]) -> list[Any]:
    """Each operation's observed value (_observed), as one list."""
    return [o.value if o.op == "get" else o.expected if o.op == "cas" else _NOTHING for o in ops]


def _drop_unobserved_info(ops: list[Operation]) -> list[Operation]:
    """Without the info writes whose value nothing left observes.

    Repeated to a fixpoint: dropping an info cas can leave the info write whose value it
    expected unobserved in turn.
    """
    obs = _observations(ops)
    observers = Counter(obs)
    info_writers: dict[str, list[int]] = defaultdict(list)
    for i, o in enumerate(ops):
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
        if (v := obs[i]) is not _NOTHING:
            observers[v] -= 1
            if isinstance(v, str):
                candidates.extend(info_writers.get(v, ()))
    return [o for i, o in enumerate(ops) if not dropped[i]]


def _due_times(ops: list[Operation], cut: Cut = START) -> list[float]:
    """Each operation's return time: its completion, inf for an optional info write, or,
    for an info write that is the only writer of a value a required operation observes,
    that observer's return (it must have happened before it). Repeated to a fixpoint, as a
    newly required info cas observes a value in turn. The value a cut left in the register
    was written there before: it counts as one more writer of that value, so an info
    write of the same value is not made required (a reader may have seen the cut's)."""
    inf = math.inf
    ret = [
        (o.complete_t if o.complete_t > o.invoke_t else o.invoke_t)  # type: ignore[operator]
        if o.status == "ok" and o.complete_t is not None
        else inf
        for o in ops
    ]
    # Only a value written by exactly one operation, an info one, can make it required.
    writers = Counter(_written(o) for o in ops if o.op != "get")
    if cut.written:
        writers[cut.value] += 1
    single_info = {
        _written(o): i
        for i, o in enumerate(ops)
        if o.status == "info" and writers[_written(o)] == 1
    }
    if not single_info:
        return ret
    obs = _observations(ops)
    due: dict[Any, float] = {}  # observed value -> earliest return of a required observer
    for v, r in zip(obs, ret, strict=True):
        if r < inf and v in single_info and r < due.get(v, inf):
            due[v] = r
    values = list(due)
    while values:
        v = values.pop()
        i = single_info[v]
        cap = max(due[v], ops[i].invoke_t)
        if cap >= ret[i]:
            continue
        ret[i] = cap
        w = obs[i]
        if w is not _NOTHING and cap < due.get(w, inf) and w in single_info:
            due[w] = cap
            values.append(w)
    return ret


# -- search ----------------------------------------------------------------------------------


CACHE_ENTRY_BYTES = 200  # a 4-tuple, its set slot and its bitset ints, measured roughly
_CHECK_EVERY = 1024  # search steps between looks at the clock and the cache's size
_RET = -3  # need[] of a return entry
_ANY = -2  # need[] of a put: any state will do; new[] of a get: the state stays


class _Search:
    def __init__(self, ops: list[Operation], ret: list[float], cut: Cut = START) -> None:
        self.ops = ops
        self.ret = ret
        self.cut = cut
        self.linearized: list[int] = []  # on success: the last CONTEXT ops, in order
        self.steps = 0
        self.reason = ""  # why the budget ran out: "steps", "time" or "memory"
        # The furthest point: (depth, last linearized op ids, pending op ids, stuck op, value)
        self.best: tuple[int, list[int], list[int], int, str | None] | None = None

    def run(self, budget: Budget | int | None) -> bool | None:
        """True if linearizable, False if not, None if the budget ran out first."""
        if budget is None or isinstance(budget, int):
            budget = Budget(steps=budget)
        ops, ret = self.ops, self.ret
        n = len(ops)
        if n == 0:
            return True
        inf = math.inf
        # Values as small ints (0: absent), so the model's state compares and hashes as one.
        ids: dict[str | None, int] = {None: 0}
        vid = ids.setdefault
        start = vid(self.cut.value, len(ids))  # the register at the cut (0: absent)
        # Entries 1..2n in time order; 0 is the head, 2n+1 the tail. At equal times calls
        # come first (operations that touch are treated as concurrent): a stable sort of
        # calls 0..n-1 then returns n..2n-1 by time.
        times = [o.invoke_t for o in ops] + ret
        order = sorted(range(2 * n), key=times.__getitem__)
        tail = 2 * n + 1
        # Per entry: the op, the state a call needs (_ANY: none; _RET: a return entry), the
        # state it leaves (_ANY: unchanged), its bit, whether it is optional, its return.
        ent_op = [0] * (tail + 1)
        need = [_RET] * (tail + 1)
        new = [_ANY] * (tail + 1)
        bit = [0] * (tail + 1)
        opt = [False] * (tail + 1)
        match = [0] * (tail + 1)
        call_entry = [0] * n
        for e, x in enumerate(order, start=1):
            if x < n:
                call_entry[x] = e
            else:
                x -= n
                match[call_entry[x]] = e
            ent_op[e] = x
        # The set of linearized operations, kept small: required operations are numbered
        # in invoke order, `low` of them are all linearized and `rest` holds the bits of
        # the ones above; optional ones (which may stay out for good) have their own bits.
        # So a memo entry costs the width of the concurrency window, not of the history.
        req_pos = opt_pos = 0
        for e in order:
            if e >= n:
                continue
            o = ops[e]
            c = call_entry[e]
            k = o.op
            if k == "get":
                need[c] = vid(o.value, len(ids))
            else:
                new[c] = vid(_written(o), len(ids))
                need[c] = vid(o.expected, len(ids)) if k == "cas" else _ANY
            if ret[e] == inf:
                opt[c] = True
                bit[c] = 1 << opt_pos
                opt_pos += 1
            else:
                bit[c] = req_pos  # a position; shifted by `low` when used
                req_pos += 1
            opt[match[c]] = opt[c]
        self.names = list(ids)  # id -> value
        nxt = list(range(1, tail + 2))
        prv = list(range(-1, tail))

        cache: set[tuple[int, int, int, int]] = set()
        # (call entry, the search's state before it: value, low, rest, optional bits; and
        # whether it was a read taken without a choice)
        stack: list[tuple[int, int, int, int, int, bool]] = []
        push, pop, remember = stack.append, stack.pop, cache.add
        state, low, rest, opt_bits = start, 0, 0, 0
        # A read that fits is taken at once, without a choice point: it leaves the state as
        # it is, so if any order of what is left works, one that starts with it does
        # (nothing pending must precede it in real time, or its call would not be in the
        # window). So each fresh window is first scanned for a fitting read (`fresh`), the
        # first fitting writer (`cand`) kept for when there is none.
        fresh, cand = True, 0
        steps = 0
        check_at = _CHECK_EVERY
        step_limit = budget.steps if budget.steps is not None else -1
        deadline = time.monotonic() + budget.seconds if budget.seconds is not None else inf
        max_cache = (
            int(budget.memory_mb * 1e6 / CACHE_ENTRY_BYTES) if budget.memory_mb is not None else -1
        )
        e = nxt[0]
        try:
            while nxt[0] != tail:
                steps += 1
                if steps >= check_at:
                    check_at += _CHECK_EVERY
                    if 0 <= step_limit <= steps:
                        self.reason = "steps"
                        return None
                    if time.monotonic() > deadline:
                        self.reason = "time"
                        return None
                    if 0 <= max_cache < len(cache):
                        self.reason = "memory"
                        return None
                w = need[e]
                if w == _RET:
                    # The return of an operation not linearized yet.
                    if opt[e]:
                        return True  # only optional (info) operations are left: leave them out
                    if cand:  # a fresh window without a fitting read: take its first writer
                        e, cand, fresh = cand, 0, False
                        w = need[e]
                    else:
                        self._note_stuck(len(stack), stack, e, state, nxt, need, ent_op)
                if w == _RET:
                    pass  # stuck: undo below
                elif w in (state, _ANY):
                    v = new[e]
                    forced = False
                    if v == _ANY:
                        v, forced = state, fresh
                    elif fresh:
                        if not cand:
                            cand = e
                        e = nxt[e]
                        continue
                    if opt[e]:
                        n_low, n_rest, n_opt = low, rest, opt_bits | bit[e]
                    else:
                        n_low, n_rest, n_opt = low, rest | (1 << (bit[e] - low)), opt_bits
                        if n_rest & 1:  # the lowest pending one: slide past the run
                            run = (~n_rest & (n_rest + 1)).bit_length() - 1
                            n_low, n_rest = low + run, n_rest >> run
                    memo = (n_low, n_rest, n_opt, v)
                    if memo not in cache:
                        remember(memo)
                        push((e, state, low, rest, opt_bits, forced))
                        state, low, rest, opt_bits = v, n_low, n_rest, n_opt
                        # lift the call and its return out of the list
                        r = match[e]
                        a, b = prv[e], nxt[e]
                        nxt[a] = b
                        prv[b] = a
                        a, b = prv[r], nxt[r]
                        nxt[a] = b
                        prv[b] = a
                        e, cand, fresh = nxt[0], 0, True
                        continue
                    if not forced:
                        e = nxt[e]
                        continue
                    # else: the configuration with the read taken was a dead end: so is this
                else:
                    e = nxt[e]
                    continue
                # A dead end: undo to the last real choice (a taken read was none).
                while True:
                    if not stack:
                        return False
                    e, state, low, rest, opt_bits, forced = pop()
                    r = match[e]
                    prv[nxt[r]] = r
                    nxt[prv[r]] = r
                    prv[nxt[e]] = e
                    nxt[prv[e]] = e
                    if not forced:
                        break
                e, cand, fresh = nxt[e], 0, False
            self.linearized = [ent_op[entry[0]] for entry in stack[-CONTEXT:]]
            return True
        finally:
            self.steps = steps
            self.cache_entries = len(cache)

    def _note_stuck(
        self,
        depth: int,
        stack: list[tuple[int, int, int, int, int, bool]],
        e: int,
        state: int,
        nxt: list[int],
        need: list[int],
        ent_op: list[int],
    ) -> None:
        """Remember the deepest point (the smallest pending window among equals)."""
        best = self.best
        if best is not None and depth < best[0]:
            return
        pending = []
        x, stuck = nxt[0], ent_op[e]
        while x != e:
            if need[x] != _RET and ent_op[x] != stuck:
                pending.append(ent_op[x])
            x = nxt[x]
        if best is not None and depth == best[0] and len(pending) >= len(best[2]):
            return
        done = [ent_op[entry[0]] for entry in stack[-CONTEXT:]]
        self.best = (depth, done, pending, stuck, self.names[state])

    def violation(self, key: str) -> Violation:
        assert self.best is not None  # run() returned False, so it got stuck somewhere
        depth, done, pending, stuck, state = self.best
        ops = self.ops
        # Counted and shown as if the prefix before the cut were still searched: it was,
        # and it ended in the linearization the cut kept the end of.
        context = [*self.cut.tail, *(ops[i] for i in done)][-CONTEXT:]
        depth += self.cut.ops
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
                "linearized": [o.summary() for o in context],
                "pending": [ops[i].summary() for i in pending],
                "stuck": blocked.summary(),
            },
        )
