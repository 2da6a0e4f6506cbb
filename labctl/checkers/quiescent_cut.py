"""Quiescent cuts: where one key's history can be split so its prefix is never searched again.

A long run's history cannot be kept whole: the live checker would hold every operation
and search every key from the start, pass after pass. Porcupine and Knossos rely on
P-compositionality per key; this goes one step further in time. A point T of one key's
history is a quiescent cut when every operation invoked by T had returned by T (none is
open across it) and every later one starts strictly after T. Then every operation before
T precedes every operation after it in real time, so the history is linearizable iff the
prefix is and the suffix is from the register value the prefix ends with, provided that
value is the same in every linearization of the prefix. It is when one write of the
prefix starts after every other write of it returned (that write is last in any order),
or the prefix writes nothing (the value at the previous cut carries on).

Info operations (timeouts) need care, since they may take effect at any time after their
invoke. An info get observes nothing and is dropped anyway. An info write that nothing in
the prefix observes is carried over into the suffix (taking effect inside the prefix,
where no one reads it, is the same as taking effect at its very start); one that the
prefix observes is made required by the search's own reduction (labctl/checkers/
linearizability.py `_due_times`), with a return inside the prefix. A prefix in which an
info write stays optional (observed, but one of several writers of its value) is not
cut: its end value is not known.

What is kept of the prefix (`Cut`) is what a violation found later in the suffix still
says about it: the value, how many operations were linearized (the "after N operations"
of the sentence), and the last few of them (the evidence's context).

Records reach the checker in the order the supervisor received them, which is not quite
time order (each client stamps its own). A cut is only taken `HORIZON` seconds of record
time behind the newest record, and an operation that arrives invoked before its key's
cut anyway is counted as late: that key's verdict is "unknown (late)" rather than a
guess.
"""

from __future__ import annotations

import math

import msgspec

from labctl.checkers.history import Operation

HORIZON = 5.0  # s of record time: how far behind the newest record a cut may be taken
MIN_PREFIX = 256  # operations: a shorter prefix is not worth a search of its own
TRY_EVERY = 1024  # operations added to a key's live history between attempts
# Quiescent points tried per attempt, latest first. Under load the latest one often ends
# in two overlapping writes (its end value unknown); an earlier point usually does not.
# Without trying them a busy key was never cut, its history grew without bound, and its
# search ran out of budget (measured: a Raft soak at 1,000 ops/s, 3 of 5 keys).
MAX_CANDIDATES = 16


class Cut(msgspec.Struct, frozen=True):
    """What one key's compacted prefix leaves behind."""

    t: float  # every compacted operation returned by then; later ones start after it
    value: str | None  # the register at the cut (None: nothing written yet)
    written: bool  # `value` was written by an operation (so it has a writer)
    ops: int  # operations the search linearized in the prefix, over all cuts
    tail: tuple[Operation, ...] = ()  # the last few of them, in linearization order


START = Cut(t=-math.inf, value=None, written=False, ops=0)


def _end(o: Operation) -> float:
    """When the operation stops constraining a cut: its return; an info write's invoke
    (it is carried over or made required by the prefix, see above)."""
    if o.status == "ok" and o.complete_t is not None:
        return o.complete_t if o.complete_t > o.invoke_t else o.invoke_t
    return o.invoke_t


def split_points(ops: list[Operation], limit: float) -> list[float]:
    """The times T < `limit` at which `ops` (one key's, fail ops and info gets aside: they
    constrain nothing) are quiescent: every one invoked at or before T has returned by T
    and the next starts after T; latest first, each with at least MIN_PREFIX operations
    before it, at most MAX_CANDIDATES of them."""
    live = sorted(
        (o for o in ops if o.status == "ok" or (o.status == "info" and o.op != "get")),
        key=lambda o: o.invoke_t,
    )
    found = []
    reach = -math.inf  # the latest end among the operations before the gap
    for i, o in enumerate(live):
        if i >= MIN_PREFIX and reach < o.invoke_t and reach < limit:
            found.append(reach)
        reach = max(reach, _end(o))
        if o.invoke_t >= limit:
            break
    else:
        if len(live) >= MIN_PREFIX and reach < limit:
            found.append(reach)
    return found[::-1][:MAX_CANDIDATES]


def last_writer(kept: list[Operation], ret: list[float]) -> tuple[bool, Operation | None]:
    """Whether the prefix's end value is the same in every linearization, and the write
    that sets it (None: the prefix writes nothing). `ret` are the search's return times."""
    writes = [(o, r) for o, r in zip(kept, ret, strict=True) if o.op != "get"]
    if not writes:
        return True, None
    last = max(writes, key=lambda w: w[0].invoke_t)
    others = max((r for o, r in writes if o is not last[0]), default=-math.inf)
    return others < last[0].invoke_t, last[0]
