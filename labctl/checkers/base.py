"""What every checker shares: the Violation record, the checker config, the Checker shape.

A checker is a small pure object fed the records of one run (events.jsonl and
history.jsonl lines, as dicts) one at a time. It returns a violation the moment the
evidence for it is complete, so the supervisor can say "two leaders in term 3" live;
checks that need the whole run (lost writes, linearizability) answer in `finish()`.
Records come from other processes, so a record with a missing or mistyped field is
dropped and counted, never raised on.
"""

from __future__ import annotations

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
)

# Ops that change the replicated state; a `get` that reaches the log changes nothing.
WRITE_OPS = frozenset({"put", "cas", "order"})

# Where the protocol cannot be imported (under construction), what we know of it.
_EXACTLY_ONCE_FALLBACK = {"naive": False, "raft": True, "epaxos": True, "pbft": True}
_PER_KEY_FALLBACK = {"epaxos": True}


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
    # Search steps per key before the linearizability check gives up ("unknown", not a
    # violation); None searches to the end.
    lin_budget: int | None = None

    def __post_init__(self) -> None:
        if self.lin_budget is not None and self.lin_budget <= 0:
            raise ValueError(f"lin_budget must be positive, got {self.lin_budget}")

    @classmethod
    def from_lab(cls, lab_config: Mapping[str, Any], **overrides: Any) -> CheckerConfig:
        """From a lab config (lab.json's "config": {"protocol": ...})."""
        protocol = lab_config.get("protocol")
        if not isinstance(protocol, str):
            return cls(**overrides)
        return cls(
            **{
                "exactly_once": protocol_is_exactly_once(protocol),
                "per_key": protocol_orders_per_key(protocol),
                **overrides,
            }
        )


def protocol_is_exactly_once(name: str) -> bool:
    """Whether the replicas of protocol `name` run an exactly-once state machine.

    The protocol class is the truth (the replica reads the same attribute); the table
    covers a protocol whose module is absent, so an old run can still be checked.
    """
    from protocols import UnknownProtocol, get

    try:
        return bool(getattr(get(name), "exactly_once", False))
    except (UnknownProtocol, ImportError, AttributeError):
        return _EXACTLY_ONCE_FALLBACK.get(name, False)


def protocol_orders_per_key(name: str) -> bool:
    """Whether protocol `name` orders only conflicting (same-key) commands."""
    from protocols import UnknownProtocol, get

    try:
        return get(name).ordering == "per_key"
    except (UnknownProtocol, ImportError, AttributeError):
        return _PER_KEY_FALLBACK.get(name, False)


class Checker:
    """Base of the checkers: `kinds` names the event kinds `on_event` wants to see."""

    kinds: ClassVar[frozenset[str]] = frozenset()
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


def get_int(rec: Mapping[str, Any], key: str) -> int | None:
    v = rec.get(key)
    # bool is an int to Python, never a term or index to us.
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def get_float(rec: Mapping[str, Any], key: str) -> float | None:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def op_label(rec: Mapping[str, Any]) -> str:
    """What the user wrote, for a violation's sentence: "put order=asha-100" rather than a
    request id (which stays in the evidence)."""
    op, key, value = rec.get("op"), rec.get("key"), rec.get("value")
    if not isinstance(op, str):
        return str(rec.get("request_id", "?"))
    if isinstance(key, str) and value is not None:
        return f"{op} {key}={value}"
    return f"{op} {key}" if isinstance(key, str) else op


def get_str(rec: Mapping[str, Any], key: str) -> str | None:
    v = rec.get(key)
    return v if isinstance(v, str) else None
