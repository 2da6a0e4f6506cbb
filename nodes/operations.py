"""A workload client's operations, pure: what the workload process and the simulator share.

Operations start on a fixed schedule (open loop: `start_op` on every slot; when
`max_inflight` operations are already waiting, the slot is counted as skipped). Each is
sent to its target (the leader it believes in, any replica, or one node) with a timeout; a
not_leader reply with a hint redirects at once, a timeout retries with exponential backoff
and full jitter, under a retry budget of 10% of operations, and every retry carries the
same request id. Every operation is recorded (Jepsen style) as an invoke and then ok, fail
(it definitely did not happen) or info (unknown). No sockets and no clock: the runtime
passes `now` (true time) in, and carries out `transmit` and `emit`.

The workload's named mutation `new-id-on-retry` (protocols/base/mutations.py) retries
with a fresh request id: the session table can no longer tell the retry from a new
request, and an order whose first attempt did commit is executed twice (the double buy
exactly-once sessions exist to stop). The history shows it as the client did it: the
first attempt ends unknown (info), and a new operation starts.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from nodes.client import Tally, completion_kind, invoke_record, kv_command, order_command
from protocols.base import ClientReply, ClientRequest, Command, Order
from protocols.base.mutations import Mutation, Probe, check_mutate

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        name="new-id-on-retry",
        bug="a client retries a timed-out request with a fresh request id",
        source="Raft paper, section 8 (client sessions); the seed course, part 7 (double buy)",
        violations=("duplicate-order", "nonlinearizable", "duplicate-apply"),
        teaches="why a retry carries the same id: the session table applies a request once "
        "only if it can recognise it; an order that committed the first time is bought twice",
        target="workload",
        probe=Probe("slow-acks"),  # replies slower than the timeout: a committed order retried
    ),
)

RETRY_BUDGET = 0.1  # retries may be at most this share of operations (plus a small floor)
BACKOFF_BASE = 0.02
BACKOFF_CAP = 0.5
SYMBOLS = ("ALPHA", "BETA", "GAMMA", "DELTA")
MIXED_ORDERS = 0.25  # the share of orders in a "mixed" workload
USERS = ("riya", "rahul", "asha", "kiran")


@dataclass
class Op:
    command: Command
    read_mode: str
    invoked: float
    node: str
    attempts: int = 0
    deadline: float = 0.0  # true time the current attempt times out
    uncertain: bool = False  # an earlier attempt timed out: it may have happened
    redirects: int = 0
    # quorum > 1 (PBFT): the replies so far; the op completes when `quorum` distinct
    # replicas said the same thing.
    tally: Tally | None = None


@dataclass
class Client:
    name: str
    replicas: list[str]
    kind: str
    target: str
    reads: list[str]
    keys: int
    timeout: float
    retries: int
    max_inflight: int
    rng: random.Random
    epoch: str = ""  # makes request ids unique across workload runs in one lab
    quorum: int = 1  # matching replies needed from distinct replicas (f+1 under PBFT)
    broadcast: bool = False  # every request to every replica (a byzantine-tolerant protocol)
    mutate: str = ""  # a named workload mutation (MUTATIONS), "" for none
    sent_ops: int = 0
    retries_used: int = 0
    skipped: int = 0
    leader_hint: str | None = None
    inflight: dict[str, Op] = field(default_factory=dict)
    backoff: list[tuple[float, str]] = field(default_factory=list)  # (true time, request id)
    # What the runtime does for the client: send one request to one replica, and record one
    # history entry (Jepsen style) at true time t.
    transmit: Callable[[str, ClientRequest], None] = lambda node, request: None
    emit: Callable[[float, dict[str, Any]], None] = lambda t, rec: None

    def __post_init__(self) -> None:
        check_mutate("the workload", self.mutate, MUTATIONS)

    def next_command(self) -> tuple[Command, str]:
        """The next operation to start and its read mode: an order or a kv operation as
        the workload's kind says."""
        self.sent_ops += 1
        rid = f"{self.name}:{self.epoch}:{self.sent_ops}"
        # "mixed" (chaos runs): a share of orders among the kv operations, so the broker
        # and its checks (zombie-write, duplicate-order) are exercised with the reads.
        if self.kind == "orders" or (self.kind == "mixed" and self.rng.random() < MIXED_ORDERS):
            return self.order_op(rid), "log"
        return self.kv_op(rid)

    def order_op(self, rid: str) -> Command:
        order = Order(
            order_id=f"o-{rid}",
            user=self.rng.choice(USERS),
            side=self.rng.choice(("buy", "sell")),
            qty=self.rng.randrange(1, 500),
            symbol=self.rng.choice(SYMBOLS),
        )
        return order_command(rid, self.name, order)

    def kv_op(self, rid: str) -> tuple[Command, str]:
        """Half reads (the read modes in turn, so each gets the same load), 30% puts, 20%
        compare-and-sets of a value this client wrote earlier, on `keys` keys."""
        key = f"k{self.rng.randrange(self.keys)}"
        roll = self.rng.random()
        if roll < 0.5:
            mode = self.reads[self.sent_ops % len(self.reads)]  # modes alternate, same load
            return kv_command(rid, self.name, "get", key), mode
        value = f"{self.name}-{self.sent_ops}"
        if roll < 0.8:
            return kv_command(rid, self.name, "put", key, value), "log"
        expected = (
            f"{self.name}-{self.rng.randrange(1, self.sent_ops)}" if self.sent_ops > 1 else ""
        )
        return kv_command(rid, self.name, "cas", key, value, expected), "log"

    def pick_node(self) -> str:
        if self.broadcast:
            return "all"  # a byzantine-tolerant protocol: every replica gets the request
        if self.target == "any":
            return self.rng.choice(self.replicas)
        if self.target == "leader":
            return self.leader_hint or self.rng.choice(self.replicas)
        return self.target

    def vote(self, op: Op, reply: ClientReply) -> ClientReply | None:
        """Count `reply` towards `op`; the reply `quorum` replicas agree on, once they do."""
        if op.tally is None:
            op.tally = Tally(self.quorum)
        return op.tally.add(reply)

    def may_retry(self) -> bool:
        return self.retries_used < max(3, RETRY_BUDGET * self.sent_ops)

    def backoff_delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # full jitter

    # -- the operation lifecycle: pure, driven by a runtime (this process, or the simulator)
    # that calls `start_op` on each scheduled slot, `on_reply` for each reply and `on_timers`
    # at `next_wake`; it supplies `transmit(node, request)` and `emit(t, record)`.

    def start_op(self, now: float) -> None:
        """One scheduled slot of the open loop: a new operation, or a skip when
        `max_inflight` operations are already waiting."""
        if len(self.inflight) >= self.max_inflight:
            self.skipped += 1
            return
        command, mode = self.next_command()
        op = Op(command, mode, now, self.pick_node())
        self.inflight[command.request_id] = op
        self.invoked(op, now)
        self.send(op, now)

    def invoked(self, op: Op, t: float) -> None:
        self.emit(t, invoke_record(self.name, op.command, op.node, op.read_mode))

    def record(self, kind: str, op: Op, t: float, **extra: Any) -> None:
        """A completion (ok, fail, info) of `op` at true time `t`."""
        c = op.command
        self.emit(t, {"type": kind, "process": self.name, "request_id": c.request_id,
                      "op": c.op, "key": c.key, **extra})  # fmt: skip

    def send(self, op: Op, now: float) -> None:
        op.attempts += 1
        op.deadline = now + self.timeout
        request = ClientRequest(op.command, op.read_mode)
        for node in self.replicas if op.node == "all" else (op.node,):
            self.transmit(node, request)

    def complete(self, op: Op, kind: str, now: float, **extra: Any) -> None:
        self.inflight.pop(op.command.request_id, None)
        if op.uncertain and kind == "fail":
            kind = "info"  # an earlier attempt may still have taken effect
        self.record(kind, op, now, node=op.node, attempts=op.attempts,
                    latency_ms=round((now - op.invoked) * 1000, 3), **extra)  # fmt: skip

    def on_reply(self, now: float, reply: ClientReply) -> None:
        op = self.inflight.get(reply.request_id)
        if op is None:
            return  # a late reply to an attempt we already gave up on
        if self.broadcast:
            agreed = self.vote(op, reply)
            if agreed is None:
                return
            reply = agreed
        if reply.status == "not_leader":
            self.leader_hint = reply.leader
            # Follow the redirect unless told to use one fixed node.
            hint = reply.leader if self.target in ("any", "leader") else None
            if hint and hint != op.node and op.redirects < len(self.replicas):
                op.redirects += 1
                op.node = hint
                self.send(op, now)
            else:
                self.complete(op, "fail", now, error="not_leader", leader=reply.leader)
        elif reply.status == "ok":
            if self.target == "leader":
                self.leader_hint = reply.node
            extra: dict[str, Any] = {"seq": reply.seq, "term": reply.term}
            if op.command.op in ("get", "cas"):
                extra["value"] = reply.value
            self.complete(op, "ok", now, **extra)
        else:
            self.complete(op, completion_kind(reply), now, error=reply.error or reply.status,
                          value=reply.value)  # fmt: skip

    def on_timers(self, now: float) -> None:
        """Timeouts (retry with backoff under the budget, or give up as info) and the
        retries whose backoff is over."""
        for op in list(self.inflight.values()):
            if op.deadline and now >= op.deadline:
                op.uncertain = True
                op.deadline = 0.0
                if op.attempts <= self.retries and self.may_retry():
                    self.retries_used += 1
                    if self.target == "leader":
                        self.leader_hint = None
                        op.node = self.pick_node()
                    heapq.heappush(self.backoff, (now + self.backoff_delay(op.attempts),
                                                  op.command.request_id))  # fmt: skip
                else:
                    self.complete(op, "info", now, error="timeout")
        while self.backoff and self.backoff[0][0] <= now:
            _, rid = heapq.heappop(self.backoff)
            if rid in self.inflight:
                op = self.inflight[rid]
                if self.mutate == "new-id-on-retry":
                    op = self._as_new_request(op, now)
                self.send(op, now)

    def _as_new_request(self, op: Op, now: float) -> Op:
        """Mutation "new-id-on-retry": the retry is a new request as far as any replica
        can tell (the same order, a fresh request id). The history says what the client
        did: the first attempt ends unknown (info), a new operation starts."""
        self.complete(op, "info", now, error="retried as a new request")
        fresh = f"{op.command.request_id}~{op.attempts}"
        command = msgspec.structs.replace(op.command, request_id=fresh)
        again = Op(command, op.read_mode, now, op.node, attempts=op.attempts)
        self.inflight[fresh] = again
        self.invoked(again, now)
        return again

    def next_timer(self) -> float | None:
        """The earliest attempt deadline or retry, if any (true time)."""
        wake = [o.deadline for o in self.inflight.values() if o.deadline]
        if self.backoff:
            wake.append(self.backoff[0][0])
        return min(wake) if wake else None

    def stop(self, now: float) -> None:
        """The run is over: what is still open ends as info (we will never know)."""
        for op in list(self.inflight.values()):
            self.complete(op, "info", now, error="stopped")
