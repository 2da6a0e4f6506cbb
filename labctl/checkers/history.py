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

from labctl.checkers.base import get_float, get_str

COMPLETIONS = frozenset({"ok", "fail", "info"})


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
        kind, rid, t = get_str(rec, "type"), get_str(rec, "request_id"), get_float(rec, "t")
        if kind is None or rid is None or t is None:
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
        self.done.append(_operation(invoke, kind, t, rec))

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
    op = get_str(invoke, "op") or ""
    value = get_str(invoke, "value")
    if op == "get":
        value = None
        if done is not None and status == "ok":
            # `labctl client` nests what came back under "reply".
            reply = done.get("reply")
            source = done if "value" in done or not isinstance(reply, Mapping) else reply
            value = get_str(source, "value")
    return Operation(
        request_id=get_str(invoke, "request_id") or "",
        process=get_str(invoke, "process"),
        op=op,
        key=get_str(invoke, "key") or "",
        value=value,
        expected=get_str(invoke, "expected"),
        invoke_t=get_float(invoke, "t") or 0.0,
        complete_t=t if status != "info" else None,
        status=status,
    )
