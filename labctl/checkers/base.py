"""What every checker shares: the Violation record, the checker config, the Checker shape.

A checker is a small pure object fed the records of one run (events.jsonl and
history.jsonl lines, as dicts) one at a time. It returns a violation the moment the
evidence for it is complete, so the supervisor can say "two leaders in term 3" live;
checks that need the whole run (lost writes, linearizability) answer in `finish()`.
Records come from other processes, so a record with a missing or mistyped field is
dropped and counted, never raised on.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

KINDS = (
    "split-brain",
    "divergence",
    "duplicate-apply",
    "lost-write",
    "nonlinearizable",
    "lease-overlap",
    "zombie-write",
    "duplicate-order",
    # Maelstrom's workloads (labctl/checkers/maelstrom.py)
    "lost-message",
    "wrong-counter",
    "duplicate-id",
    "bad-echo",
)

# Ops that change the replicated state; a `get` that reaches the log changes nothing.
WRITE_OPS = frozenset({"put", "cas", "order"})


class Violation(msgspec.Struct, frozen=True):
    """One safety violation, with the evidence that proves it."""

    kind: str  # one of KINDS
    t: float  # true time of the record that completed the evidence
    nodes: list[str]  # sorted: the replicas involved (client processes, for nonlinearizable)
    detail: str  # one human sentence: "two leaders in term 1: r0, r1"
    evidence: dict[str, Any] = {}  # small: which entries, which ops

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class CheckerConfig(msgspec.Struct, frozen=True):
    """What the checkers need to know about the run that the records do not say."""

    # The state machine answers a re-committed request id from its session table (Raft)
    # instead of executing it again (naive): a duplicate=True apply is then harmless.
    exactly_once: bool = False
    # The protocol orders only commands on one key (EPaxos): divergence then compares each
    # key's order of commands, not what each replica applied at one index.
    per_key: bool = False
    linearizability: bool = True
    # What the linearizability search may spend per key before it gives up ("unknown for
    # key k (budget)", not a violation): steps, wall seconds, megabytes of memo cache
    # (None: no bound). A crafted history of a few dozen operations can need 2^n.
    lin_budget: int | None = None
    # The replicas report what they apply (`applied` events), so a write absent from all
    # of them is lost. External programs (labctl/external.py) report nothing of the kind.
    applied_events: bool = True
    lin_seconds: float | None = 20.0
    lin_memory_mb: float | None = 1024.0
    # False in the simulator: the live search is bounded by steps and memory only, never
    # by the wall clock, so a seed gives the same events on a busy machine as on an idle
    # one (set lin_seconds None there too).
    lin_wall_clock: bool = True

    def __post_init__(self) -> None:
        for name in ("lin_budget", "lin_seconds", "lin_memory_mb"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")

    @classmethod
    def from_lab(cls, lab_config: Mapping[str, Any], **overrides: Any) -> CheckerConfig:
        """From a lab config (lab.json's "config": {"protocol": ...}). What the protocol
        declared is recorded there when the lab starts ("exactly_once", "ordering"), so a
        run is judged by what its protocol said then, installed now or not; a record
        without it (an older run) asks the protocol class."""
        protocol = lab_config.get("protocol")
        if not isinstance(protocol, str):
            return cls(**overrides)
        exactly_once = lab_config.get("exactly_once")
        ordering = lab_config.get("ordering")
        return cls(
            **{
                "applied_events": protocol not in ("external", "etcd"),
                "exactly_once": exactly_once if isinstance(exactly_once, bool)
                else protocol_is_exactly_once(protocol),
                "per_key": ordering == "per_key" if isinstance(ordering, str)
                else protocol_orders_per_key(protocol),
                **overrides,
            }
        )


def protocol_is_exactly_once(name: str) -> bool:
    """Whether the replicas of protocol `name` run an exactly-once state machine (the
    class's `exactly_once`, which the replica reads too). A protocol that is not
    installed here (an old run of a plugin) is judged as not exactly-once: a duplicate
    apply is then reported, never excused."""
    from protocols import UnknownProtocol, get

    try:
        return get(name).exactly_once
    except UnknownProtocol:
        return False


def protocol_orders_per_key(name: str) -> bool:
    """Whether protocol `name` orders only conflicting (same-key) commands."""
    from protocols import UnknownProtocol, get

    try:
        return get(name).ordering == "per_key"
    except UnknownProtocol:
        return False


class Checker:
    """Base of the checkers: `kinds` names the event kinds `on_event` wants to see."""

    kinds: ClassVar[frozenset[str]] = frozenset()
    # kind -> a field: records of that kind without it are not fed to this checker
    # (split brain reads applied events only for their view, which few protocols report).
    gates: ClassVar[Mapping[str, str]] = {}
    reads_history: ClassVar[bool] = False

    def __init__(self) -> None:
        self.malformed = 0

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        return []

    def on_history(self, rec: Mapping[str, Any]) -> list[Violation]:
        return []

    def finish(self) -> list[Violation]:
        return []


# -- reading fields of records written by other processes ----------------------------------


# These run a few times per checker per record (130k+ calls in a 30 s simulated run), so
# each first tests the exact class a decoded or simulated record holds, and only then
# the general rule (a subclass of int or str), which gives the same answer slower.


def get_int(rec: Mapping[str, Any], key: str) -> int | None:
    v = rec.get(key)
    if v.__class__ is int:
        return v
    # bool is an int to Python, never a term or index to us.
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def get_float(rec: Mapping[str, Any], key: str) -> float | None:
    v = rec.get(key)
    cls = v.__class__
    if cls is float:
        return v  # float(v) of a float is v itself
    if cls is int:
        return float(v)
    if isinstance(v, bool) or not isinstance(v, _NUMBERS):
        return None
    return float(v)


_NUMBERS = (int, float)  # a tuple: `int | float` would build a union object per call


def op_label(rec: Mapping[str, Any]) -> str:
    """What the user wrote, for a violation's sentence: "put order=asha-100" rather than a
    request id (which stays in the evidence)."""
    get = rec.get
    op = get("op")
    if op.__class__ is not str and not isinstance(op, str):
        return str(get("request_id", "?"))
    key = get("key")
    if key.__class__ is not str and not isinstance(key, str):
        return op
    # Interned: the same label is kept by several checkers and for every node.
    value = get("value")
    return sys.intern(f"{op} {key}" if value is None else f"{op} {key}={value}")


def get_str(rec: Mapping[str, Any], key: str) -> str | None:
    v = rec.get(key)
    return v if v.__class__ is str or isinstance(v, str) else None
