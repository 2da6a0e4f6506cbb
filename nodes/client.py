"""The one client path: build a command, record it, send it, map what comes back.

Every client of a lab goes through here: the workload processes (nodes/workload.py, the
open loop itself in nodes/operations.py, shared with the simulator), `labctl client` and
the Python API (`labctl.api.Lab.request`), and the dashboard (which calls the API). So the
rules are written once:

- a command: `kv_command` / `order_command` (an order is op "order" keyed by its symbol,
  valued "user:side:qty", which the broker and the checkers read back);
- history records (Jepsen style, history.jsonl): `invoke_record` when the operation
  starts, then a completion `ok` (it happened), `fail` (it definitely did not: a refusal,
  not_leader) or `info` (unknown: a timeout), as `completion_kind` decides;
- the reply rule of a byzantine-tolerant protocol (PBFT): the request goes to every
  replica and a result counts once `quorum` (f+1) distinct replicas said the same thing,
  (status, seq, value, error): `Tally`;
- `call`: one operation, synchronously, through an `Endpoint` (a DEALER on the fault
  router, so link faults that name clients apply to it), answered as
  `labctl client --json` prints it.

Only this file and the protocols' wire structs say what a client request looks like.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from nodes.process import data_endpoint
from nodes.wire import Codec, WireError
from protocols.base import ClientReply, ClientRequest, Command, Order

ALL = "all"  # the node a broadcast request is recorded as sent to (every replica)


# -- commands --------------------------------------------------------------------------------


def new_request_id(client: str) -> str:
    """A request id no other request of any run shares (a one-shot client's)."""
    return f"{client}:{uuid.uuid4().hex[:12]}"


def new_order(user: str, side: str, qty: int, symbol: str, order_id: str | None = None) -> Order:
    return Order(order_id=order_id or f"o-{uuid.uuid4().hex[:10]}", user=user, side=side,
                 qty=qty, symbol=symbol)  # fmt: skip


def order_command(request_id: str, client: str, order: Order) -> Command:
    """An order as the replicas, the broker and the checkers expect it: keyed by its
    symbol, valued "user:side:qty"."""
    return Command(request_id=request_id, client=client, op="order", key=order.symbol,
                   value=f"{order.user}:{order.side}:{order.qty}", order=order)  # fmt: skip


def kv_command(request_id: str, client: str, op: str, key: str, value: str = "",
               expected: str = "") -> Command:  # fmt: skip
    return Command(request_id=request_id, client=client, op=op, key=key, value=value,
                   expected=expected)  # fmt: skip


# -- history records -------------------------------------------------------------------------


def invoke_record(process: str, command: Command, node: str, read_mode: str) -> dict[str, Any]:
    """The invoke half of an operation (without its time, which the caller stamps)."""
    rec: dict[str, Any] = {"type": "invoke", "process": process, "node": node,
                           "request_id": command.request_id, "op": command.op,
                           "key": command.key, "value": command.value}  # fmt: skip
    if command.op == "cas":
        rec["expected"] = command.expected
    if command.op == "get":
        rec["read_mode"] = read_mode
    return rec


def completion_kind(reply: ClientReply | None, uncertain: bool = False) -> str:
    """ok, fail or info for an operation that ended with `reply` (None: no answer in
    time). `uncertain`: an earlier attempt timed out, so a refusal now does not prove the
    operation did not happen."""
    if reply is None:
        return "info"
    if reply.status == "ok":
        return "ok"
    return "info" if uncertain else "fail"


# -- the f+1 rule ----------------------------------------------------------------------------


def said(reply: ClientReply) -> tuple[Any, ...]:
    """What a reply says, for matching replies from different replicas."""
    return (reply.status, reply.seq, reply.value, reply.error)


class Tally:
    """Replies to one request from distinct replicas, until `quorum` of them agree.
    A replica's later reply replaces its earlier one (it may have re-executed)."""

    def __init__(self, quorum: int) -> None:
        self.quorum = max(1, quorum)
        self.votes: dict[str, tuple[Any, ...]] = {}

    def add(self, reply: ClientReply) -> ClientReply | None:
        """Count `reply`; it is returned once `quorum` replicas said the same thing."""
        key = said(reply)
        self.votes[reply.node] = key
        return reply if len(self.agreeing(key)) >= self.quorum else None

    def agreeing(self, key: tuple[Any, ...]) -> list[str]:
        return sorted(n for n, k in self.votes.items() if k == key)


# -- the socket ------------------------------------------------------------------------------


class Endpoint:
    """A DEALER on the router under `name`; replies are matched by request id."""

    def __init__(
        self,
        ctx: zmq.Context,
        router: str,
        name: str | None = None,
        secret: bytes | None = None,
        prefix: str = "cli",
    ) -> None:
        self.name = name or f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.codec = Codec()
        self.sock = data_endpoint(ctx, router, self.name, secret=secret)

    def send(self, node: str, request: ClientRequest, block: bool = True) -> bool:
        """Send one request; without `block`, a full pipe drops it (False): a lost
        attempt, which the caller's timeout handles."""
        try:
            self.sock.send_multipart([node.encode(), self.codec.encode(request)],
                                     0 if block else zmq.NOBLOCK)  # fmt: skip
        except zmq.Again:
            return False
        return True

    def poll(self, timeout_ms: int) -> bool:
        return bool(self.sock.poll(timeout_ms))

    def replies(self) -> list[ClientReply]:
        """Every reply that has arrived (without waiting); undecodable frames are skipped."""
        out: list[ClientReply] = []
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            out.extend(self._decode(frames))

    def _decode(self, frames: list[bytes]) -> list[ClientReply]:
        if len(frames) != 2:
            return []
        try:
            msgs, _ = self.codec.decode_all(frames[1])  # a Bundle holds several replies
        except WireError:
            return []
        return [m for m in msgs if isinstance(m, ClientReply)]

    def wait(self, request_id: str, timeout: float) -> ClientReply | None:
        """The reply to `request_id`, or None after `timeout` seconds; strays are skipped."""
        deadline = time.monotonic() + timeout
        while (remaining_ms := int((deadline - time.monotonic()) * 1000)) > 0:
            if not self.sock.poll(remaining_ms):
                return None
            for msg in self._decode(self.sock.recv_multipart()):
                if msg.request_id == request_id:
                    return msg
        return None

    def call(self, node: str, command: Command, read_mode: str = "log",
             timeout: float = 1.0) -> ClientReply | None:  # fmt: skip
        self.send(node, ClientRequest(command, read_mode))
        return self.wait(command.request_id, timeout)

    def call_quorum(
        self,
        nodes: Sequence[str],
        command: Command,
        quorum: int,
        read_mode: str = "log",
        timeout: float = 1.0,
    ) -> tuple[ClientReply | None, list[str]]:
        """Send to every node in `nodes`; the reply `quorum` of them agree on (status, seq,
        value, error) and who agreed, or (None, []) after `timeout` (PBFT's f+1 rule)."""
        request = ClientRequest(command, read_mode)
        for node in nodes:
            self.send(node, request)
        tally = Tally(quorum)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = self.wait(command.request_id, left)
            if reply is None:
                break
            if tally.add(reply) is not None:
                return reply, tally.agreeing(said(reply))
        return None, []

    def close(self) -> None:
        self.sock.close(0)


# -- one operation, synchronously ------------------------------------------------------------


def answer(command: Command, node: str, reply: ClientReply | None, agreed: Sequence[str],
           with_term: bool) -> dict[str, Any]:  # fmt: skip
    """What came back, as `labctl client --json` prints it: status ok / not_leader / fail /
    timeout, node, then leader (not_leader) or term (where the protocol has one), seq,
    value (get, cas), error, and agreed (the replicas whose replies matched: PBFT)."""
    if reply is None:
        return {"status": "timeout", "node": node}
    out: dict[str, Any] = {"status": reply.status, "node": reply.node}
    if reply.status == "not_leader":
        out["leader"] = reply.leader
    else:
        if with_term:  # PBFT, EPaxos: no term (0)
            out["term"] = reply.term
        out["seq"] = reply.seq
        if command.op in ("get", "cas"):
            out["value"] = reply.value
        if reply.error:
            out["error"] = reply.error
    if agreed:
        out["agreed"] = list(agreed)  # the f+1 (or more) replicas whose replies matched
    return out


def call(
    endpoint: Endpoint,
    command: Command,
    nodes: Sequence[str],
    *,
    quorum: int = 1,
    read_mode: str = "log",
    timeout: float = 1.0,
    with_term: bool = True,
    record: Callable[[dict[str, Any]], None] = lambda rec: None,
) -> dict[str, Any]:
    """One operation: recorded as invoked, sent to `nodes` (one node; or every replica,
    completing on `quorum` matching replies, when `quorum` > 1), its completion recorded,
    and what came back returned as `answer` has it, plus "ms" (the wall time it took).
    `record` takes each history record (with its true time "t")."""
    broadcast = quorum > 1 or len(nodes) > 1
    node = ALL if broadcast else nodes[0]
    t0 = time.monotonic()
    record({**invoke_record(endpoint.name, command, node, read_mode), "t": t0})
    agreed: list[str] = []
    if broadcast:
        reply, agreed = endpoint.call_quorum(nodes, command, quorum, read_mode, timeout)
    else:
        reply = endpoint.call(node, command, read_mode, timeout)
    t1 = time.monotonic()
    out = answer(command, node, reply, agreed, with_term)
    record({"type": completion_kind(reply), "t": t1, "process": endpoint.name, "node": node,
            "request_id": command.request_id, "op": command.op, "reply": out})  # fmt: skip
    return {**out, "ms": round((t1 - t0) * 1000, 1)}
