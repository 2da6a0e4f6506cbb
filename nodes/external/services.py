"""Maelstrom's service nodes, as one lab process with one router endpoint each:

- `lin-kv`: one map in one single-threaded process, each request applied the moment it
  arrives. Every operation takes effect between its request's arrival and its reply, so
  the store is linearizable by construction (the network around it may still delay,
  drop or duplicate messages, as faults say).
- `seq-kv`: sequentially consistent. Every write and cas applies to the newest state and
  is one step of a single total order; a read may see any state from the newest one its
  client has seen (read or written) up to the newest of all, so each client observes a
  monotonic order while reads can be stale, as the name allows.
- `lww-kv`: five independent replicas of last-write-wins registers. Each request goes to
  one of them at random; writes are stamped with this process's clock; every 100 ms each
  replica merges one other's values, the higher stamp winning. Reads may be stale and a
  cas may act on an old value: the pathology the name promises.

Requests are Maelstrom's kv RPCs: read {key}, write {key, value}, cas {key, from, to,
create_if_not_exists}. Errors: 20 key-does-not-exist, 22 precondition-failed, 10 for an
unknown type, 12 for a malformed body. Every reply goes back to the router's sender.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any

import msgspec
import zmq

from nodes.external import names
from nodes.external.names import KEY_DOES_NOT_EXIST, PRECONDITION_FAILED, Envelope
from nodes.process import (
    Telemetry,
    data_endpoint,
    die_with_parent,
    on_stop_signals,
    parent_alive,
    true_now,
)

SEQ_HISTORY = 10_000  # states seq-kv keeps for stale reads
LWW_REPLICAS = 5
LWW_GOSSIP = 0.1
_MISSING = object()
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Envelope).decode


class KVError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _hashable(key: Any) -> Any:
    """Maelstrom keys are any JSON value; lists and maps become their canonical JSON."""
    if isinstance(key, (list, dict)):
        return msgspec.json.encode(key, order="sorted")
    return key


def apply(state: dict[Any, Any], body: dict[str, Any], allow_write: bool = True) -> dict[str, Any]:
    """One kv request against `state` (mutated for write and cas): the reply body."""
    kind = body.get("type")
    if "key" not in body:
        raise KVError(12, "a kv request needs a key")
    key = _hashable(body["key"])
    if kind == "read":
        value = state.get(key, _MISSING)
        if value is _MISSING:
            raise KVError(KEY_DOES_NOT_EXIST, "key does not exist")
        return {"type": "read_ok", "value": value}
    if kind == "write":
        if "value" not in body:
            raise KVError(12, "write needs a value")
        state[key] = body["value"]
        return {"type": "write_ok"}
    if kind == "cas":
        if "from" not in body or "to" not in body:
            raise KVError(12, "cas needs from and to")
        current = state.get(key, _MISSING)
        if current is _MISSING:
            if not body.get("create_if_not_exists"):
                raise KVError(KEY_DOES_NOT_EXIST, "key does not exist")
        elif current != body["from"]:
            raise KVError(PRECONDITION_FAILED, f"expected {body['from']!r}, but had {current!r}")
        state[key] = body["to"]
        return {"type": "cas_ok"}
    raise KVError(10, f"{kind!r} is not a kv operation (read, write, cas)")


class LinKV:
    def __init__(self) -> None:
        self.state: dict[Any, Any] = {}

    def handle(self, client: str, body: dict[str, Any]) -> dict[str, Any]:
        return apply(self.state, body)


class SeqKV:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.versions: list[dict[Any, Any]] = [{}]
        self.base = 0  # version number of versions[0]
        self.seen: dict[str, int] = {}  # client -> newest version it has observed

    def handle(self, client: str, body: dict[str, Any]) -> dict[str, Any]:
        latest = self.base + len(self.versions) - 1
        if body.get("type") == "read":
            lo = max(self.seen.get(client, self.base), self.base)
            v = self.rng.randint(lo, latest)
            self.seen[client] = v
            return apply(self.versions[v - self.base], body)
        state = dict(self.versions[-1])
        try:
            reply = apply(state, body)
        finally:
            self.seen[client] = latest  # a failed cas observed the newest state too
        if state != self.versions[-1]:
            self.versions.append(state)
            self.seen[client] = latest + 1
            if len(self.versions) > SEQ_HISTORY:
                drop = len(self.versions) - SEQ_HISTORY
                del self.versions[:drop]
                self.base += drop
        return reply


class LwwKV:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.replicas: list[dict[Any, tuple[float, Any]]] = [{} for _ in range(LWW_REPLICAS)]
        self.next_gossip = true_now() + LWW_GOSSIP

    def handle(self, client: str, body: dict[str, Any]) -> dict[str, Any]:
        replica = self.rng.choice(self.replicas)
        view = {k: v for k, (_, v) in replica.items()}
        reply = apply(view, body)
        stamp = time.time() + self.rng.uniform(-0.005, 0.005)  # roughly synchronized clocks
        for k, v in view.items():
            old = replica.get(k)
            if old is None or old[1] != v:
                replica[k] = (stamp, v)
        return reply

    def gossip(self, now: float) -> None:
        if now < self.next_gossip:
            return
        self.next_gossip = now + LWW_GOSSIP
        for replica in self.replicas:
            other = self.rng.choice(self.replicas)
            for k, sv in other.items():
                mine = replica.get(k)
                if mine is None or sv[0] > mine[0]:
                    replica[k] = sv


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nodes.external.services")
    p.add_argument("--router", required=True)
    p.add_argument("--telemetry", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent(args.parent_pid)
    running = [True]
    on_stop_signals(lambda: running.__setitem__(0, False))
    rng = random.Random(f"{args.seed}:services")
    ctx = zmq.Context()
    telemetry = Telemetry(ctx, args.telemetry, "services")
    lww = LwwKV(rng)
    stores: dict[str, Any] = {"lin-kv": LinKV(), "seq-kv": SeqKV(rng), "lww-kv": lww}
    socks = {name: data_endpoint(ctx, args.router, name) for name in names.SERVICES}
    poller = zmq.Poller()
    for s in socks.values():
        poller.register(s, zmq.POLLIN)
    counts = {name: 0 for name in names.SERVICES}
    counts["malformed"] = 0
    telemetry.emit("services.ready", services=list(names.SERVICES))
    next_report = true_now() + 1.0
    while running[0] and parent_alive(args.parent_pid):
        ready = dict(poller.poll(50))
        for name, sock in socks.items():
            if sock not in ready:
                continue
            for _ in range(512):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 2:
                    counts["malformed"] += 1
                    continue
                src = frames[0].decode("utf-8", "replace")
                try:
                    env = _decode(frames[1])
                    body = msgspec.json.decode(env.body)
                    if not isinstance(body, dict):
                        raise TypeError
                except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
                    counts["malformed"] += 1
                    continue
                counts[name] += 1
                try:
                    reply = stores[name].handle(src, body)
                except KVError as e:
                    reply = {"type": "error", "code": e.code, "text": e.text}
                if isinstance(body.get("msg_id"), int):
                    reply["in_reply_to"] = body["msg_id"]
                out = {"src": name, "dest": names.to_program(src), "body": reply}
                try:
                    sock.send_multipart([frames[0], _encode(out)], zmq.NOBLOCK)
                except zmq.Again:
                    # the router is swamped: the client times out
                    counts["send_dropped"] = counts.get("send_dropped", 0) + 1
        now = true_now()
        lww.gossip(now)
        if now >= next_report:
            next_report = now + 1.0
            telemetry.emit("services.status", requests=dict(counts))
    telemetry.close()
    for s in socks.values():
        s.close(0)
    ctx.term()


if __name__ == "__main__":
    main()
