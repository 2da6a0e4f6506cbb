"""The broker: the downstream store leaders send side effects to (the exchange).

    python -m nodes.broker --router EP --telemetry EP --record FILE [--fencing]
                           [--mutate no-fencing]

Each BrokerWrite carries the sender's fencing token (its term or view). With fencing on,
a write whose token is below the highest token seen is rejected: Kleppmann's one-line
check. With it off, a deposed leader's writes land: the zombie writes the lab detects.
Every decision is appended to the record file (JSON lines) and published as telemetry.

The broker's named mutation (protocols/base/mutations.py) `no-fencing` keeps saying it
fences while it ignores the tokens: the bug of a store that takes a token and never
compares it.
Only replicas write (--replicas): a write whose source (the name the router saw its
connection authenticate as) is not a replica, or that claims another node than its
source, is dropped and counted (`not_replica`), and neither moves the highest token nor
reaches the record: an outsider's token of 2**63-1 would otherwise fence out every
legitimate leader for the rest of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

import zmq

from nodes import auth
from nodes.inbound import Drops
from nodes.process import (
    Telemetry,
    control_socket,
    data_endpoint,
    die_with_parent,
    error,
    hello,
    log,
    ok,
    on_stop_signals,
    parent_alive,
    serve_control,
    true_now,
)
from nodes.wire import Codec, WireError
from protocols.base import BrokerAck, BrokerWrite
from protocols.base.mutations import Mutation, Probe, check_mutate

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        name="no-fencing",
        bug="the store takes fencing tokens and never compares them, even when fencing is asked",
        source="Kleppmann, 'How to do distributed locking' (2016); DDIA chapter 8",
        violations=("zombie-write",),
        teaches="why a lease or a leadership is not enough: a paused, deposed leader's write "
        "lands after its successor's unless the store itself checks the token",
        target="broker",
        probe=Probe("fsync-stall", fencing=True),  # a stalled leader's late side effect
    ),
)


class Broker:
    def __init__(self, fencing: bool, mutate: str = "") -> None:
        check_mutate("the broker", mutate, MUTATIONS)
        self.fencing = fencing
        self.mutate = mutate
        self.highest = 0
        self.accepted = 0
        self.rejected = 0

    def decide(self, write: BrokerWrite) -> bool:
        # Mutation "no-fencing": the comparison below is skipped, fencing on or not.
        checks = self.fencing and self.mutate != "no-fencing"
        if checks and write.token < self.highest:
            self.rejected += 1
            return False
        self.highest = max(self.highest, write.token)
        self.accepted += 1
        return True


def highest_recorded(path: str) -> int:
    """The highest token the record holds: a restarted broker fences from where it was
    (an exchange does not forget which leader it last obeyed). Lines that are not records
    (a torn last line) are skipped."""
    highest = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    value = json.loads(line).get("highest")
                except (ValueError, AttributeError, RecursionError):
                    continue
                if isinstance(value, int) and not isinstance(value, bool):
                    highest = max(highest, value)
    except FileNotFoundError:
        pass
    return highest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nodes.broker")
    p.add_argument("--router", required=True)
    p.add_argument("--telemetry", default=None)
    p.add_argument("--record", required=True)
    p.add_argument("--fencing", action="store_true")
    p.add_argument("--replicas", default=None, help="who may write (comma-separated); all if unset")
    p.add_argument("--mutate", default="", help="a named mutation (no-fencing)")
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent(args.parent_pid)

    stopped = threading.Event()
    on_stop_signals(stopped.set)

    ctx = zmq.Context()
    zap = auth.serve(ctx, auth.env_secret())  # noqa: F841 - answers handshakes until term
    telemetry = Telemetry(ctx, args.telemetry, "broker")
    data = data_endpoint(ctx, args.router, "broker")
    control, control_ep = control_socket(ctx)
    codec = Codec()
    broker = Broker(args.fencing, args.mutate)
    broker.highest = highest_recorded(args.record)
    counters: dict[str, int] = {"malformed": 0, "not_replica": 0}
    writers = frozenset(args.replicas.split(",")) if args.replicas else None
    drops = Drops("broker")  # logs the first of each kind of bad input, once
    record = open(args.record, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    telemetry.emit("broker.ready", control=control_ep, fencing=args.fencing)
    log("broker", f"pid {os.getpid()}, fencing {'on' if args.fencing else 'off'}; "
        f"every decision goes to {args.record}")  # fmt: skip

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "fencing":
            if not isinstance(request.get("on"), bool):
                return error("fencing needs 'on': true or false")
            broker.fencing = request["on"]
        elif cmd not in ("stats", "ping"):
            return error(
                f"unknown command {cmd!r} (known: fencing, stats, ping)", "unknown_command"
            )
        return ok(
            fencing=broker.fencing,
            highest=broker.highest,
            accepted=broker.accepted,
            rejected=broker.rejected,
            counters=counters,
        )

    poller = zmq.Poller()
    poller.register(data, zmq.POLLIN)
    poller.register(control, zmq.POLLIN)
    next_hello = 0.0
    while not stopped.is_set() and parent_alive(args.parent_pid):
        events = dict(poller.poll(200))
        if (now := true_now()) >= next_hello:
            hello(data)  # the broker only answers: a restarted router must still know it
            next_hello = now + 1.0
        if control in events:
            serve_control(control, handle, counters)
        if data not in events:
            continue
        while True:
            try:
                frames = data.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) != 2:
                counters["malformed"] += 1
                drops.drop("framing", f"{len(frames)} frames")
                continue
            try:
                msg = codec.decode(frames[1])
            except WireError as e:
                counters["malformed"] += 1
                drops.drop("undecodable", e)
                continue
            if not isinstance(msg, BrokerWrite):
                counters["malformed"] += 1
                drops.drop("not_a_write", type(msg).__name__)
                continue
            sender = frames[0].decode("utf-8", "replace")
            if writers is not None and (sender not in writers or msg.node != sender):
                counters["not_replica"] += 1
                drops.drop("not_replica", f"{sender} wrote as {msg.node}")
                continue
            accepted = broker.decide(msg)
            t = true_now()
            entry = {
                "t": t,
                "from": sender,
                "token": msg.token,
                "node": msg.node,
                "seq": msg.seq,
                "request_id": msg.request_id,
                "order_id": msg.order.order_id if msg.order is not None else None,
                "accepted": accepted,
                "highest": broker.highest,
            }
            record.write(json.dumps(entry) + "\n")
            telemetry.emit("broker.write", t=t, **{k: v for k, v in entry.items() if k != "t"})
            ack = BrokerAck(msg.request_id, accepted, broker.highest)
            try:
                data.send_multipart([frames[0], codec.encode(ack)], zmq.NOBLOCK)
            except zmq.Again:
                pass
    record.close()
    telemetry.close()
    data.close(0)
    control.close(0)
    ctx.term()


if __name__ == "__main__":
    main()
