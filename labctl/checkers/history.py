"""Client histories: invoke and completion records (history.jsonl) paired into operations.

Jepsen style: an `ok` operation happened, somewhere between its invoke and its
completion; a `fail` one definitely did not; an `info` one (a timeout) may or may not have
happened, at any time after its invoke. An operation still open at the end of the run is
an info operation too: its client never learned the outcome either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from labctl.checkers.base import get_str

COMPLETIONS = frozenset({"ok", "fail", "info"})
_NUMBERS = (int, float)  # exactly: a bool is no time


class Operation(msgspec.Struct, frozen=True):
    request_id: str
    process: str | None
    op: str  # put | get | cas | order
    key: str
    value: str | None  # put, cas: the value written; get: the value read (ok only)
    expected: str | None  # cas only
    invoke_t: float
    complete_t: float | None  # None for an info operation
    status: str  # ok | fail | info

    def summary(self) -> dict[str, Any]:
        """The few fields a person needs to find the operation in history.jsonl."""
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "process": self.process,
            "op": self.op,
            "status": self.status,
            "invoke_t": self.invoke_t,
            "complete_t": self.complete_t,
        }
        if self.op == "cas":
            out["expected"] = self.expected
        if self.op != "get" or self.status == "ok":
            out["value"] = self.value
        return out


class HistoryPairer:
    """Pairs records as they arrive; cheap per record, so it can run live."""

    def __init__(self) -> None:
        self.open: dict[str, Mapping[str, Any]] = {}  # request id -> its invoke record
        self.done: list[Operation] = []
        self.malformed = 0

    def add(self, rec: Mapping[str, Any]) -> None:
        # get_str/get_float inlined: this runs once per record of a whole run.
        get = rec.get
        kind, rid, t = get("type"), get("request_id"), get("t")
        if (
            kind.__class__ is not str
            or rid.__class__ is not str
            or t.__class__ not in _NUMBERS
        ):
            self.malformed += 1
            return
        if kind == "invoke":
            if get_str(rec, "op") is None:
                self.malformed += 1
                return
            self.open[rid] = rec
            return
        invoke = self.open.pop(rid, None)
        if kind not in COMPLETIONS or invoke is None:
            self.malformed += 1  # a completion of nothing we saw invoked
            return
        self.done.append(_operation(invoke, kind, float(t), rec))

    def operations(self) -> list[Operation]:
        """Every operation so far, the still-open ones as info, in completion order."""
        return self.done + [_operation(inv, "info", None, None) for inv in self.open.values()]


def pair_history(records: Iterable[Mapping[str, Any]]) -> list[Operation]:
    pairer = HistoryPairer()
    for rec in records:
        pairer.add(rec)
    return pairer.operations()


def _operation(
    invoke: Mapping[str, Any], status: str, t: float | None, done: Mapping[str, Any] | None
) -> Operation:
    get = invoke.get
    op, value, key = get("op"), get("value"), get("key")
    process, expected, invoke_t = get("process"), get("expected"), get("t")
    if op.__class__ is not str:
        op = ""
    if op == "get":
        value = None
        if done is not None and status == "ok":
            # `labctl client` nests what came back under "reply".
            reply = done.get("reply")
            source = done if "value" in done or not isinstance(reply, Mapping) else reply
            value = source.get("value")
    return Operation(
        request_id=invoke["request_id"],  # a str: the pairer checked
        process=process if process.__class__ is str else None,
        op=op,
        key=key if key.__class__ is str else "",
        value=value if value.__class__ is str else None,
        expected=expected if expected.__class__ is str else None,
        invoke_t=float(invoke_t) if invoke_t.__class__ in _NUMBERS else 0.0,
        complete_t=t if status != "info" else None,
        status=status,
    )
