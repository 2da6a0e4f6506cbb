"""The replicated state machine committed commands are applied to: `kv` and `orders`.

It is deterministic, so replicas that apply the same commands in the same order hold the
same state; the checkers compare what each replica applied.

Exactly-once is the state machine's job when the protocol asks for it (Raft, section 8 of
the paper): a session table remembers every applied request id and its result, and a
command committed twice (a client retry that reached the log twice) is answered from the
table instead of being applied again. The naive protocol does not ask for it, which is how
the lab shows the double buy.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

from protocols.base import Command

# Sessions kept for exactly-once answers. Retries arrive within seconds, so the most recent
# writes are the ones that matter; evicting the oldest (in apply order, the same on every
# replica) keeps memory and snapshots bounded instead of growing with the whole history.
MAX_SESSIONS = 20_000


class ApplyResult(msgspec.Struct, frozen=True):
    status: str  # ok | fail (cas mismatch)
    index: int  # the index the command took effect at (the original one for a duplicate)
    term: int
    value: str | None = None
    duplicate: bool = False  # this request id had been applied before
    op: str = ""


class _Image(msgspec.Struct):
    applied_index: int
    applied_term: int
    kv: dict[str, str]
    orders: list[tuple[int, str, str]]
    sessions: dict[str, ApplyResult]


class StateMachine:
    def __init__(self, exactly_once: bool = False) -> None:
        self.exactly_once = exactly_once
        self.applied_index = 0
        self.applied_term = 0
        self.kv: dict[str, str] = {}
        self.orders: list[tuple[int, str, str]] = []  # (index, order_id, request_id)
        # Ordered by apply: evicting the oldest is popitem(last=False), O(1). A plain dict's
        # next(iter(...)) walks past every entry deleted from its front since the last
        # resize: it was the replica's largest single cost at 20k writes/s.
        self.sessions: OrderedDict[str, ApplyResult] = OrderedDict()

    def apply(self, index: int, term: int, command: Command) -> ApplyResult:
        previous = self.sessions.get(command.request_id)
        self.applied_index = max(self.applied_index, index)
        self.applied_term = term
        if previous is not None and self.exactly_once:
            return msgspec.structs.replace(previous, duplicate=True)
        result = msgspec.structs.replace(self._execute(index, term, command), op=command.op)
        if previous is not None:
            result = msgspec.structs.replace(result, duplicate=True)
        if command.op != "get" and previous is None:
            self.sessions[command.request_id] = result
            if len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        return result

    def _execute(self, index: int, term: int, c: Command) -> ApplyResult:
        if c.op == "put":
            self.kv[c.key] = c.value or ""
            # No echo of the value: the result is kept in the session table (and so in
            # every snapshot) for the exactly-once answer, and a large put's value there
            # was dead weight the size of the write, 20,000 times over.
            return ApplyResult("ok", index, term, None)
        if c.op == "get":
            return ApplyResult("ok", index, term, self.kv.get(c.key))
        if c.op == "cas":
            current = self.kv.get(c.key)
            if current != c.expected:
                return ApplyResult("fail", index, term, current)
            self.kv[c.key] = c.value or ""
            return ApplyResult("ok", index, term, current)
        if c.op == "order":
            order_id = c.order.order_id if c.order else c.request_id
            self.orders.append((index, order_id, c.request_id))
            return ApplyResult("ok", index, term, order_id)
        # Protocols refuse unknown ops (protocols.base.request_problem), but a command
        # decided elsewhere (a byzantine primary's pre-prepare, a WAL written before that
        # check) may still carry one: it fails, deterministically on every replica, and
        # changes nothing. Raising here ended the replica, and again at every replay.
        return ApplyResult("fail", index, term, None)

    def read(self, key: str) -> str | None:
        return self.kv.get(key)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            _Image(self.applied_index, self.applied_term, self.kv, self.orders, self.sessions)
        )

    @staticmethod
    def check_image(data: bytes, index: int) -> str | None:
        """What is wrong with `data` as the image of applied index `index` (None if it is
        one): it must decode completely and say it covers exactly `index`."""
        try:
            image = msgspec.msgpack.decode(data, type=_Image)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return f"not a state machine image: {e}"
        if image.applied_index != index:
            return f"image covers index {image.applied_index}, not {index}"
        if image.applied_index < 0 or image.applied_term < 0:
            return "negative index or term"
        return None

    def restore(self, data: bytes) -> None:
        image = msgspec.msgpack.decode(data, type=_Image)
        self.applied_index = image.applied_index
        self.applied_term = image.applied_term
        self.kv = dict(image.kv)
        self.orders = [tuple(o) for o in image.orders]  # type: ignore[misc]
        self.sessions = OrderedDict(image.sessions)

    def covered_since(self, before: int) -> list[dict[str, Any]]:
        """After a restore: each write the image holds above index `before` (from its
        session table), as an "applied" event's fields marked from_snapshot, so the
        checkers see a replica holding what it holds."""
        covered = sorted((r.index, rid, r) for rid, r in self.sessions.items() if r.index > before)
        return [
            {"index": index, "term": r.term, "request_id": rid, "op": r.op, "duplicate": False,
             "result": r.status, "from_snapshot": True}
            for index, rid, r in covered
        ]  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {
            "applied_index": self.applied_index,
            "keys": len(self.kv),
            "orders": len(self.orders),
        }


def applied_row(index: int, term: int, command: Command, result: ApplyResult,
                view: int | None = None) -> list[Any]:  # fmt: skip
    """The fields of one "applied" event (protocols.base.events.APPLIED_ROW), as a row."""
    row = [index, term, command.request_id, command.op, command.key, command.value,
           result.duplicate, result.status]  # fmt: skip
    if view is not None:
        row.append(view)
    return row
