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
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from nodes.client import Endpoint
from nodes.operations import Client
from nodes.process import Telemetry, die_with_parent, on_stop_signals, parent_alive, true_now
from protocols.base import ClientRequest

IDLE_WAIT = 0.1  # nothing scheduled (rate 0, draining): how long to wait for a reply
MAX_WAIT = 0.1  # never sleep longer than this, so a stop signal or a dead parent is seen


def parse_args(argv: list[str]) -> argparse.Namespace:
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
    return p.parse_args(argv)


def make_client(args: argparse.Namespace) -> Client:
    """The operations of this client (nodes/operations.py) as its command line asks.
    ValueError for a target that is no replica."""
    client = Client(
        name=args.name, replicas=args.replicas.split(","), kind=args.kind, target=args.target,
        reads=args.reads.split(","), keys=args.keys, timeout=args.timeout, retries=args.retries,
        max_inflight=args.max_inflight, rng=random.Random(f"{args.seed}:{args.name}"),
        epoch=f"{os.getpid():x}", quorum=max(1, args.quorum),
        broadcast=args.broadcast or args.quorum > 1, mutate=args.mutate,
    )  # fmt: skip
    if args.target not in ("any", "leader") and args.target not in client.replicas:
        raise ValueError(f"unknown target {args.target!r}")
    return client


@dataclass
class Pacer:
    """The open loop's schedule: one slot every 1/rate seconds from `start`, until
    `start + duration`. A slot is due whatever happened to the previous one, so a slow
    cluster does not slow the offered load (a slot with no room is the client's skip)."""

    start: float
    rate: float
    duration: float | None = None

    def __post_init__(self) -> None:
        self.next_slot = self.start
        self.interval = 1.0 / self.rate if self.rate > 0 else None
        self.end = self.start + self.duration if self.duration else None

    def issuing(self, now: float) -> bool:
        """Whether new operations still start (the run's duration is not over)."""
        return self.end is None or now < self.end

    def take(self, now: float) -> bool:
        """True (and the slot is used) when a slot is due at `now`: at most one per call,
        so a late loop catches up one slot per turn rather than in a burst."""
        if self.interval is None or not self.issuing(now) or now < self.next_slot:
            return False
        self.next_slot += self.interval
        return True

    def next_wake(self, now: float) -> float | None:
        """When the next slot is due, while new operations still start."""
        if self.interval is None or not self.issuing(now):
            return None
        return self.next_slot


class Workload:
    """One workload client process: its operations (`client`), its schedule (`pacer`),
    a socket on the router (`endpoint`) and its telemetry. `run` is the loop; each turn
    issues what is due, takes the replies, fires timers, then sleeps until the next thing
    to do. The parts are methods so each can be driven alone (tests/test_workload.py)."""

    def __init__(self, client: Client, pacer: Pacer, endpoint: Endpoint, telemetry: Telemetry,
                 clock: Callable[[], float] = true_now) -> None:  # fmt: skip
        self.client = client
        self.pacer = pacer
        self.endpoint = endpoint
        self.telemetry = telemetry
        self.clock = clock
        client.transmit = self.transmit
        client.emit = self.record

    # What the operations ask of the process.

    def transmit(self, node: str, request: ClientRequest) -> None:
        self.endpoint.send(node, request, block=False)  # a full pipe: the timeout handles it

    def record(self, t: float, rec: dict) -> None:
        """One history record, to the supervisor (which writes history.jsonl)."""
        self.telemetry.emit("history", t=t, **rec)

    # One turn of the loop, in parts.

    def done(self, now: float) -> bool:
        """The duration is over and nothing is left waiting for an answer."""
        return not self.pacer.issuing(now) and not self.client.inflight

    def issue(self, now: float) -> bool:
        """Start an operation if a slot is due (the client may count it as skipped)."""
        if not self.pacer.take(now):
            return False
        self.client.start_op(now)
        return True

    def receive(self) -> int:
        """Hand every reply that has arrived to the operations; how many there were."""
        replies = self.endpoint.replies()
        for reply in replies:
            self.client.on_reply(self.clock(), reply)
        return len(replies)

    def wait_time(self, now: float) -> float:
        """Seconds until the next thing to do: a scheduled slot, a deadline, a retry."""
        wake = [w for w in (self.pacer.next_wake(now), self.client.next_timer()) if w is not None]
        return min(wake) - now if wake else IDLE_WAIT

    def turn(self) -> None:
        self.issue(self.clock())
        self.receive()
        self.client.on_timers(self.clock())
        wait = self.wait_time(self.clock())
        if wait > 0:
            self.endpoint.poll(max(1, min(int(MAX_WAIT * 1000), int(wait * 1000))))

    def run(self, keep_going: Callable[[], bool]) -> None:
        while keep_going() and not self.done(self.clock()):
            self.turn()
        self.client.stop(self.clock())
        self.report()

    def report(self) -> None:
        """The client's counts, once, at the end (the supervisor's workload stats)."""
        c = self.client
        self.telemetry.emit("workload.done", ops=c.sent_ops, skipped=c.skipped,
                            retries=c.retries_used, open=len(c.inflight))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent(args.parent_pid)
    try:
        client = make_client(args)
    except ValueError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    stopped = threading.Event()
    on_stop_signals(stopped.set)
    ctx = zmq.Context()
    telemetry = Telemetry(ctx, args.telemetry, args.name)
    endpoint = Endpoint(ctx, args.router, args.name)
    workload = Workload(client, Pacer(true_now(), args.rate, args.duration), endpoint, telemetry)
    try:
        workload.run(lambda: not stopped.is_set() and parent_alive(args.parent_pid))
    finally:
        telemetry.close()
        endpoint.close()
        ctx.term()


if __name__ == "__main__":
    main()
