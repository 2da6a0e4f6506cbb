"""A workload client process: open-loop operations with the seed's Part-7 hygiene.

    python -m nodes.workload --name c0 --router EP --telemetry EP --kind kv --rate 50 ...

Operations start on a fixed schedule (open loop: a slow cluster does not slow the offered
load; when `max_inflight` operations are already waiting, the slot is counted as skipped).
Each operation is sent to its target (the leader it believes in, any replica, or one
node) with a timeout; a not_leader reply with a hint redirects at once, a timeout retries
with exponential backoff and full jitter, under a retry budget of 10% of operations, and
every retry carries the same request id. None of that prevents split-brain: the lab shows
it. Every operation is recorded (Jepsen style) as an invoke and then ok, fail (it
definitely did not happen) or info (unknown), with true times, sent to the supervisor as
"history" telemetry.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import zmq

from nodes.process import (
    Telemetry,
    data_endpoint,
    die_with_parent,
    on_stop_signals,
    parent_alive,
    true_now,
)
from nodes.wire import Codec, WireError
from protocols.base import ClientReply, ClientRequest, Command, Order

RETRY_BUDGET = 0.1  # retries may be at most this share of operations (plus a small floor)
BACKOFF_BASE = 0.02
BACKOFF_CAP = 0.5
SYMBOLS = ("ALPHA", "BETA", "GAMMA", "DELTA")
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
    # quorum > 1 (PBFT): the replies so far, node -> what it said; the op completes when
    # `quorum` distinct replicas said the same thing.
    votes: dict[str, tuple[Any, ...]] = field(default_factory=dict)


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
    sent_ops: int = 0
    retries_used: int = 0
    skipped: int = 0
    leader_hint: str | None = None
    inflight: dict[str, Op] = field(default_factory=dict)
    backoff: list[tuple[float, str]] = field(default_factory=list)  # (true time, request id)

    def next_command(self) -> tuple[Command, str]:
        self.sent_ops += 1
        rid = f"{self.name}:{self.epoch}:{self.sent_ops}"
        if self.kind == "orders":
            order = Order(
                order_id=f"o-{rid}",
                user=self.rng.choice(USERS),
                side=self.rng.choice(("buy", "sell")),
                qty=self.rng.randrange(1, 500),
                symbol=self.rng.choice(SYMBOLS),
            )
            cmd = Command(request_id=rid, client=self.name, op="order", key=order.symbol,
                          value=f"{order.user}:{order.side}:{order.qty}", order=order)  # fmt: skip
            return cmd, "log"
        key = f"k{self.rng.randrange(self.keys)}"
        roll = self.rng.random()
        if roll < 0.5:
            mode = self.reads[self.sent_ops % len(self.reads)]  # modes alternate, same load
            return Command(request_id=rid, client=self.name, op="get", key=key), mode
        value = f"{self.name}-{self.sent_ops}"
        if roll < 0.8:
            return Command(request_id=rid, client=self.name, op="put", key=key, value=value), "log"
        expected = (
            f"{self.name}-{self.rng.randrange(1, self.sent_ops)}" if self.sent_ops > 1 else ""
        )
        cmd = Command(request_id=rid, client=self.name, op="cas", key=key, expected=expected,
                      value=value)  # fmt: skip
        return cmd, "log"

    def pick_node(self) -> str:
        if self.broadcast:
            return "all"  # a byzantine-tolerant protocol: every replica gets the request
        if self.target == "any":
            return self.rng.choice(self.replicas)
        if self.target == "leader":
            return self.leader_hint or self.rng.choice(self.replicas)
        return self.target

    def vote(self, op: Op, reply: ClientReply) -> ClientReply | None:
        """Count `reply` towards `op`; the reply `quorum` replicas agree on, once they do.
        A replica's later reply replaces its earlier one (it may have re-executed)."""
        said = (reply.status, reply.seq, reply.value, reply.error)
        op.votes[reply.node] = said
        if sum(1 for v in op.votes.values() if v == said) >= self.quorum:
            return reply
        return None

    def may_retry(self) -> bool:
        return self.retries_used < max(3, RETRY_BUDGET * self.sent_ops)

    def backoff_delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # full jitter


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nodes.workload")
    p.add_argument("--name", required=True)
    p.add_argument("--router", required=True)
    p.add_argument("--telemetry", required=True)
    p.add_argument("--replicas", required=True)
    p.add_argument("--kind", choices=("kv", "orders"), default="kv")
    p.add_argument("--rate", type=float, required=True, help="operations/s of this client")
    p.add_argument("--target", default="leader")
    p.add_argument("--reads", default="log")
    p.add_argument("--keys", type=int, default=5)
    p.add_argument("--timeout", type=float, default=0.25)
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--max-inflight", type=int, default=16)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quorum", type=int, default=1, help="matching replies needed (f+1: PBFT)")
    p.add_argument("--broadcast", action="store_true", help="send every request to every replica")
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent(args.parent_pid)

    stopped = threading.Event()
    on_stop_signals(stopped.set)

    ctx = zmq.Context()
    telemetry = Telemetry(ctx, args.telemetry, args.name)
    sock = data_endpoint(ctx, args.router, args.name)
    codec = Codec()
    client = Client(
        name=args.name, replicas=args.replicas.split(","), kind=args.kind, target=args.target,
        reads=args.reads.split(","), keys=args.keys, timeout=args.timeout, retries=args.retries,
        max_inflight=args.max_inflight, rng=random.Random(f"{args.seed}:{args.name}"),
        epoch=f"{os.getpid():x}", quorum=max(1, args.quorum),
        broadcast=args.broadcast or args.quorum > 1,
    )  # fmt: skip
    if args.target not in ("any", "leader") and args.target not in client.replicas:
        sys.stderr.write(f"error: unknown target {args.target!r}\n")
        sys.exit(2)

    def record(kind: str, op: Op, t: float, **extra: Any) -> None:
        c = op.command
        rec: dict[str, Any] = {"type": kind, "process": client.name, "request_id": c.request_id,
                               "op": c.op, "key": c.key}  # fmt: skip
        if kind == "invoke":
            rec["value"] = c.value
            if c.op == "cas":
                rec["expected"] = c.expected
            if c.op == "get":
                rec["read_mode"] = op.read_mode
        rec.update(extra)
        telemetry.emit("history", t=t, **rec)

    def send(op: Op, now: float) -> None:
        op.attempts += 1
        op.deadline = now + client.timeout
        payload = codec.encode(ClientRequest(op.command, op.read_mode))
        for node in client.replicas if op.node == "all" else (op.node,):
            try:
                sock.send_multipart([node.encode(), payload], zmq.NOBLOCK)
            except zmq.Again:
                pass  # counts as a lost attempt: the timeout handles it

    def complete(op: Op, kind: str, now: float, **extra: Any) -> None:
        client.inflight.pop(op.command.request_id, None)
        if op.uncertain and kind == "fail":
            kind = "info"  # an earlier attempt may still have taken effect
        record(kind, op, now, node=op.node, attempts=op.attempts,
               latency_ms=round((now - op.invoked) * 1000, 3), **extra)  # fmt: skip

    start = true_now()
    end = start + args.duration if args.duration else None
    interval = 1.0 / args.rate if args.rate > 0 else None
    next_op = start
    while not stopped.is_set() and parent_alive(args.parent_pid):
        now = true_now()
        issuing = end is None or now < end
        if not issuing and not client.inflight:
            break
        if issuing and interval is not None and now >= next_op:
            next_op += interval
            if len(client.inflight) >= client.max_inflight:
                client.skipped += 1
            else:
                command, mode = client.next_command()
                op = Op(command, mode, now, client.pick_node())
                client.inflight[command.request_id] = op
                record("invoke", op, now, node=op.node)
                send(op, now)
        # Replies.
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) != 2:
                continue
            try:
                msgs, _ = codec.decode_all(frames[1])  # a Bundle holds several replies
            except WireError:
                continue
            for reply in msgs:
                if not isinstance(reply, ClientReply):
                    continue
                op = client.inflight.get(reply.request_id)
                if op is None:
                    continue  # a late reply to an attempt we already gave up on
                now = true_now()
                if client.broadcast:
                    agreed = client.vote(op, reply)
                    if agreed is None:
                        continue
                    reply = agreed
                if reply.status == "not_leader":
                    client.leader_hint = reply.leader
                    # Follow the redirect unless told to use one fixed node.
                    hint = reply.leader if client.target in ("any", "leader") else None
                    if hint and hint != op.node and op.redirects < len(client.replicas):
                        op.redirects += 1
                        op.node = hint
                        send(op, now)
                    else:
                        complete(op, "fail", now, error="not_leader", leader=reply.leader)
                elif reply.status == "ok":
                    if client.target == "leader":
                        client.leader_hint = reply.node
                    extra: dict[str, Any] = {"seq": reply.seq, "term": reply.term}
                    if op.command.op in ("get", "cas"):
                        extra["value"] = reply.value
                    complete(op, "ok", now, **extra)
                else:
                    complete(op, "fail", now, error=reply.error or reply.status, value=reply.value)
        # Timeouts and backoff.
        now = true_now()
        for op in list(client.inflight.values()):
            if op.deadline and now >= op.deadline:
                op.uncertain = True
                op.deadline = 0.0
                if op.attempts <= client.retries and client.may_retry():
                    client.retries_used += 1
                    if client.target == "leader":
                        client.leader_hint = None
                        op.node = client.pick_node()
                    heapq.heappush(client.backoff, (now + client.backoff_delay(op.attempts),
                                                    op.command.request_id))  # fmt: skip
                else:
                    complete(op, "info", now, error="timeout")
        while client.backoff and client.backoff[0][0] <= now:
            _, rid = heapq.heappop(client.backoff)
            if rid in client.inflight:
                send(client.inflight[rid], now)
        # Sleep until the next thing to do: a reply, a scheduled op, a deadline, a retry.
        wake = [next_op] if issuing and interval is not None else []
        wake += [o.deadline for o in client.inflight.values() if o.deadline]
        if client.backoff:
            wake.append(client.backoff[0][0])
        wait = min(wake) - true_now() if wake else 0.1
        if wait > 0:
            sock.poll(max(1, min(100, int(wait * 1000))))
    now = true_now()
    for op in list(client.inflight.values()):
        complete(op, "info", now, error="stopped")  # we will never know how these ended
    telemetry.emit("workload.done", ops=client.sent_ops, skipped=client.skipped,
                   retries=client.retries_used, open=len(client.inflight))  # fmt: skip
    telemetry.close()
    sock.close(0)
    ctx.term()


if __name__ == "__main__":
    main()
