"""A workload client process: open-loop operations with the seed's Part-7 hygiene.

The operations themselves (schedule, retries, history) are nodes/operations.py's, shared
with the simulator; this is the process around them: a socket, the clock, telemetry.

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
import os
import random
import sys
import threading

import zmq

from nodes.operations import Client
from nodes.process import (
    Telemetry,
    data_endpoint,
    die_with_parent,
    on_stop_signals,
    parent_alive,
    true_now,
)
from nodes.wire import Codec, WireError
from protocols.base import ClientReply, ClientRequest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nodes.workload")
    p.add_argument("--name", required=True)
    p.add_argument("--router", required=True)
    p.add_argument("--telemetry", required=True)
    p.add_argument("--replicas", required=True)
    p.add_argument("--kind", choices=("kv", "orders", "mixed"), default="kv")
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
    p.add_argument("--mutate", default="", help="a named mutation (new-id-on-retry)")
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
        broadcast=args.broadcast or args.quorum > 1, mutate=args.mutate,
    )  # fmt: skip
    if args.target not in ("any", "leader") and args.target not in client.replicas:
        sys.stderr.write(f"error: unknown target {args.target!r}\n")
        sys.exit(2)

    def transmit(node: str, request: ClientRequest) -> None:
        try:
            sock.send_multipart([node.encode(), codec.encode(request)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # counts as a lost attempt: the timeout handles it

    client.transmit = transmit
    client.emit = lambda t, rec: telemetry.emit("history", t=t, **rec)

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
            client.start_op(now)
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
                if isinstance(reply, ClientReply):
                    client.on_reply(true_now(), reply)
        # Timeouts and backoff.
        client.on_timers(true_now())
        # Sleep until the next thing to do: a reply, a scheduled op, a deadline, a retry.
        wake = [next_op] if issuing and interval is not None else []
        timer = client.next_timer()
        if timer is not None:
            wake.append(timer)
        wait = min(wake) - true_now() if wake else 0.1
        if wait > 0:
            sock.poll(max(1, min(100, int(wait * 1000))))
    client.stop(true_now())
    telemetry.emit("workload.done", ops=client.sent_ops, skipped=client.skipped,
                   retries=client.retries_used, open=len(client.inflight))  # fmt: skip
    telemetry.close()
    sock.close(0)
    ctx.term()


if __name__ == "__main__":
    main()
