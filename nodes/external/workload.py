"""The Maelstrom-style client: a workload process that speaks Maelstrom's client RPCs.

    python -m nodes.external.workload --name c0 --kind lin-kv --rate 50 --replicas r0,r1,r2 ...

Workloads by Maelstrom's names (doc/workloads.md): `lin-kv` (read, write, cas on a few
integer keys with small integer values), `broadcast` (broadcast unique integers, read
the set), `g-counter` (add small deltas, read the total), `unique-ids` (generate),
`echo`. Operations start on a fixed schedule (open loop), each to a random replica (or
`--target`), with one timeout and no retries, as Maelstrom's clients do: a timeout, a
program's indefinite error (doc/protocol.md) or a stop is `info`, a definite error `fail`.

Every operation goes into history.jsonl (through the supervisor) Jepsen style, with
`workload` naming its kind. lin-kv operations are recorded in the lab's kv vocabulary
(get/put/cas, values as strings, a read of a missing key reads None) so the lab's
linearizability checker judges them; the rest are read by labctl/checkers/maelstrom.py.
With `--final` this client, once the run's operations are done, waits `--settle` seconds
and reads every replica once more (broadcast, g-counter): the reads convergence is
judged on, marked `final`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
from dataclasses import dataclass
from typing import Any

import msgspec
import zmq

from nodes.external import names
from nodes.process import (
    Telemetry,
    data_endpoint,
    die_with_parent,
    on_stop_signals,
    parent_alive,
    true_now,
)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(names.Envelope).decode
FINAL_ATTEMPTS = 3


@dataclass
class Op:
    msg_id: int
    node: str
    kind: str  # the Maelstrom request type
    invoked: float
    deadline: float
    record: dict[str, Any]  # the invoke record's fields (op, key, value, ...)
    final: bool = False


class Generator:
    """The next request of one workload: (Maelstrom body, history fields)."""

    def __init__(self, kind: str, rng: random.Random, keys: int, client_index: int) -> None:
        self.kind = kind
        self.rng = rng
        self.keys = keys
        self.counter = 0
        # Broadcast messages are unique across clients: each client has its own range.
        self.base = client_index * 10_000_000

    def next(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self.counter += 1
        roll = self.rng.random()
        if self.kind == "lin-kv":
            key = self.rng.randrange(self.keys)
            if roll < 0.5:
                return {"type": "read", "key": key}, {"op": "get", "key": str(key)}
            value = self.rng.randrange(5)
            if roll < 0.8:
                return ({"type": "write", "key": key, "value": value},
                        {"op": "put", "key": str(key), "value": str(value)})  # fmt: skip
            frm = self.rng.randrange(5)
            fields = {"op": "cas", "key": str(key), "expected": str(frm), "value": str(value)}
            return {"type": "cas", "key": key, "from": frm, "to": value}, fields
        if self.kind == "broadcast":
            if roll < 0.5:
                message = self.base + self.counter
                return ({"type": "broadcast", "message": message},
                        {"op": "broadcast", "value": message})  # fmt: skip
            return {"type": "read"}, {"op": "read"}
        if self.kind == "g-counter":
            if roll < 0.6:
                delta = self.rng.randrange(6)
                return {"type": "add", "delta": delta}, {"op": "add", "delta": delta}
            return {"type": "read"}, {"op": "read"}
        if self.kind == "unique-ids":
            return {"type": "generate"}, {"op": "generate"}
        text = f"Please echo {self.counter}"
        return {"type": "echo", "echo": text}, {"op": "echo", "value": text}


def outcome(op: Op, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A reply's history type and fields: ok, fail (a definite error) or info."""
    rtype = body.get("type")
    if rtype == "error":
        code = body.get("code")
        extra = {"error": names.ERRORS.get(code, f"code {code}") if isinstance(code, int)
                 else str(code), "code": code, "text": str(body.get("text", ""))[:200]}  # fmt: skip
        if op.kind == "read" and op.record.get("op") == "get" and code == names.KEY_DOES_NOT_EXIST:
            return "ok", {"value": None}  # the key was never written: the register's None
        return ("fail" if names.is_definite(code) else "info"), extra
    if rtype != f"{op.kind}_ok":
        return "info", {"error": f"unexpected reply type {rtype!r}"}
    if op.kind == "read":
        if op.record.get("op") == "get":
            v = body.get("value")
            return "ok", {"value": None if v is None else str(v)}
        if op.record.get("workload") == "broadcast" or "messages" in body:
            msgs = body.get("messages")
            return "ok", {"messages": msgs if isinstance(msgs, list) else None}
        return "ok", {"value": body.get("value")}
    if op.kind == "generate":
        return "ok", {"id": body.get("id")}
    if op.kind == "echo":
        return "ok", {"echoed": body.get("echo")}
    return "ok", {}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nodes.external.workload")
    p.add_argument("--name", required=True)
    p.add_argument("--router", required=True)
    p.add_argument("--telemetry", required=True)
    p.add_argument("--replicas", required=True)
    p.add_argument("--kind", choices=names.WORKLOADS, required=True)
    p.add_argument("--rate", type=float, required=True, help="operations/s of this client")
    p.add_argument("--target", default="any")
    p.add_argument("--keys", type=int, default=5)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--max-inflight", type=int, default=32)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--final", action="store_true", help="read every replica at the end")
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent(args.parent_pid)
    replicas = args.replicas.split(",")
    if args.target != "any" and args.target not in replicas:
        sys.stderr.write(f"error: unknown target {args.target!r}\n")
        sys.exit(2)
    stopped = threading.Event()
    on_stop_signals(stopped.set)
    ctx = zmq.Context()
    telemetry = Telemetry(ctx, args.telemetry, args.name)
    sock = data_endpoint(ctx, args.router, args.name)
    rng = random.Random(f"{args.seed}:{args.name}")
    index = int(args.name[1:]) if args.name[1:].isdigit() else 0
    gen = Generator(args.kind, rng, args.keys, index)
    epoch = f"{os.getpid():x}"
    inflight: dict[int, Op] = {}
    next_id = [0]
    skipped = 0
    answered: set[str] = set()  # replicas whose final read came back

    def record(kind: str, op: Op, t: float, **extra: Any) -> None:
        rec = {"type": kind, "process": args.name, "request_id": f"{args.name}:{epoch}:{op.msg_id}",
               "workload": args.kind, "node": op.node, **op.record}  # fmt: skip
        if kind != "invoke":
            rec["latency_ms"] = round((t - op.invoked) * 1000, 3)
            if op.record.get("op") == "get":
                rec.pop("value", None)
        if op.final:
            rec["final"] = True
        rec.update(extra)
        telemetry.emit("history", t=t, **rec)

    def start(body: dict[str, Any], fields: dict[str, Any], node: str, final: bool = False) -> None:
        next_id[0] += 1
        now = true_now()
        body = {**body, "msg_id": next_id[0]}
        op = Op(next_id[0], node, body["type"], now, now + args.timeout, fields, final)
        inflight[op.msg_id] = op
        record("invoke", op, now)
        msg = {"src": args.name, "dest": names.to_program(node), "body": body}
        try:
            sock.send_multipart([node.encode(), _encode(msg)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # a lost request: its timeout makes it info

    def receive(wait_ms: int) -> None:
        if not sock.poll(max(0, wait_ms)):
            return
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                continue
            try:
                body = msgspec.json.decode(_decode(frames[1]).body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if not isinstance(body, dict):
                continue
            op = inflight.pop(body.get("in_reply_to"), None) if isinstance(
                body.get("in_reply_to"), int) else None  # fmt: skip
            if op is None:
                continue  # a reply after its timeout, or a duplicate
            kind, extra = outcome(op, body)
            record(kind, op, true_now(), **extra)
            if op.final and kind == "ok":
                answered.add(op.node)

    def expire() -> None:
        now = true_now()
        for op in [o for o in inflight.values() if o.deadline <= now]:
            del inflight[op.msg_id]
            record("info", op, now, error="timeout")

    t0 = true_now()
    end = t0 + args.duration if args.duration else None
    interval = 1.0 / args.rate if args.rate > 0 else None
    next_op = t0
    while not stopped.is_set() and parent_alive(args.parent_pid):
        now = true_now()
        issuing = end is None or now < end
        if not issuing and not inflight:
            break
        if issuing and interval is not None and now >= next_op:
            next_op += interval
            if len(inflight) >= args.max_inflight:
                skipped += 1
            else:
                body, fields = gen.next()
                node = rng.choice(replicas) if args.target == "any" else args.target
                start(body, fields, node)
        expire()
        wake = [next_op] if issuing and interval is not None else []
        wake += [o.deadline for o in inflight.values()]
        wait = (min(wake) - true_now()) if wake else 0.1
        receive(max(0, min(100, int(wait * 1000))))
    if args.final and args.kind in ("broadcast", "g-counter") and not stopped.is_set():
        settle_end = true_now() + args.settle
        while true_now() < settle_end and not stopped.is_set():
            receive(50)  # late replies are dropped: their ops are already info
        for node in replicas:
            for _ in range(FINAL_ATTEMPTS):
                if stopped.is_set():
                    break
                start({"type": "read"}, {"op": "read"}, node, final=True)
                while inflight and not stopped.is_set():
                    receive(50)
                    expire()
                if node in answered:
                    break
    now = true_now()
    for op in list(inflight.values()):
        record("info", op, now, error="stopped")  # never learned how these ended
    telemetry.emit("workload.done", ops=next_id[0], skipped=skipped, open=len(inflight))
    telemetry.close()
    sock.close(0)
    ctx.term()


if __name__ == "__main__":
    main()
