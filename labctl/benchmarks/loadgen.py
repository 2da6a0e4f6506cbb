"""A load generator: one endpoint on the fault router driving a lab's leader, for benchmarks.

    python -m labctl.benchmarks.loadgen --router EP --name c0 --replicas r0,r1,r2 \
        --mode closed --inflight 64 --op put --warmup 1 --duration 5 [--start-at T]
    python -m labctl.benchmarks.loadgen ... --mode open --rate 500 --op get --read-mode lease

Closed loop: `--inflight` requests are outstanding at all times; each completion is
replaced at once (throughput). Open loop: requests start on a fixed schedule of `--rate`
per second whatever the cluster does (latency at an offered load); `--inflight` caps what
may be outstanding and slots beyond the cap are counted as skipped.

The endpoint is a DEALER on the router whose identity is `--name` (the supervisor keeps
c0..c15 addressable), exactly like workload clients, so every request and reply crosses
the router. A not_leader reply with a hint is re-sent to that node at once (same request
id); one without a hint goes to the next replica. A request unanswered after `--timeout`
is re-sent to the next replica with the same request id and counted as a timeout.

Keys: `--keys N` cycles through N keys; `--conflict P` instead sends a share P of the
writes to one hot key and every other write to a key of its own (EPaxos: P is the share
of commands that interfere). `--broadcast` (PBFT) sends every request to every replica and
`--quorum K` completes it when K replicas sent matching replies (f+1); a timeout re-sends
to all.

Timing: `--start-at` is a `time.monotonic()` instant (shared by every process on the
machine), so several generators started by one benchmark measure the same window:
[start + warmup, start + warmup + duration]. Only completions inside the window count
towards `ok` and the latency percentiles; `ok_total` counts every success. Latency is from
the first send of a request to its reply (for the open loop, `sched_lag_ms` says how late
sends left against their schedule). Prints one JSON object on stdout when done.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import uuid
from typing import Any

import zmq

from nodes.client import Tally
from nodes.process import data_endpoint, die_with_parent, on_stop_signals, parent_alive
from nodes.wire import Codec, WireError
from protocols.base import ClientReply, ClientRequest, Command

TIMEOUT_SCAN = 0.02  # how often outstanding requests are checked for their timeout


def percentiles(xs: list[float], qs: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, Any]:
    """Nearest-rank percentiles of `xs` (milliseconds), plus mean, max and count."""
    if not xs:
        return {"n": 0}
    s = sorted(xs)
    out: dict[str, Any] = {}
    for q in qs:
        rank = max(1, math.ceil(q / 100 * len(s)))
        out[f"p{q:g}"] = round(s[rank - 1], 3)
    out["mean"] = round(sum(s) / len(s), 3)
    out["max"] = round(s[-1], 3)
    out["n"] = len(s)
    return out


class LoadGen:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.name: str = args.name
        self.replicas: list[str] = args.replicas.split(",")
        self.node: str = args.leader or self.replicas[0]  # where new requests go
        self.codec = Codec()
        self.ctx = zmq.Context()
        self.sock = data_endpoint(self.ctx, args.router, self.name)
        self.value = "v" * args.value_size
        self.seq = 0
        # Request ids must be unique across generator runs in one lab: the state machine's
        # session table would answer a reused id from its table instead of applying it.
        self.rid_prefix = f"{self.name}:{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # request id -> [first send (monotonic), node, payload, last send, deferred]
        self.inflight: dict[str, list[Any]] = {}
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.counts = {"sent": 0, "ok": 0, "ok_total": 0, "fail": 0, "timeouts": 0,
                       "redirects": 0, "skipped": 0, "resent": 0}  # fmt: skip
        self.votes: dict[str, Tally] = {}  # --quorum: request id -> the replies so far
        self.outbox: dict[str, list[bytes]] = {}  # this turn's requests, per replica
        self.running = True

    # -- requests --------------------------------------------------------------------------

    def _new(self, now: float) -> None:
        self.seq += 1
        rid = f"{self.rid_prefix}:{self.seq}"
        conflict = self.args.conflict
        if conflict is None:
            key = f"k{self.seq % self.args.keys}"
        elif int(self.seq * conflict) != int((self.seq - 1) * conflict):
            key = "hot"  # exactly a share `conflict` of requests, evenly spread
        else:
            key = f"{self.name}-{self.seq}"
        if self.args.op == "put":
            cmd = Command(request_id=rid, client=self.name, op="put", key=key, value=self.value)
            mode = "log"
        else:
            cmd = Command(request_id=rid, client=self.name, op="get", key=key)
            mode = self.args.read_mode
        payload = self.codec.encode(ClientRequest(cmd, mode))
        self.inflight[rid] = [now, self.node, payload, now, False]
        self.counts["sent"] += 1
        self._send(self.node, payload)

    def _send(self, node: str, payload: bytes) -> None:
        for dst in self.replicas if self.args.broadcast else (node,):
            self.outbox.setdefault(dst, []).append(payload)

    def _flush(self) -> None:
        """What this turn of the loop sends, one frame per replica (a Bundle when several):
        clients batch like any transport, and the router forwards one frame, not 64."""
        for dst, payloads in self.outbox.items():
            try:
                self.sock.send_multipart([dst.encode(), self.codec.bundle(payloads)], zmq.NOBLOCK)
            except zmq.Again:
                pass  # lost attempts: the timeout re-sends them
        self.outbox.clear()

    def _agreed(self, reply: ClientReply) -> bool:
        """--quorum: whether `quorum` replicas have now sent this same reply."""
        tally = self.votes.setdefault(reply.request_id, Tally(self.args.quorum))
        return tally.add(reply) is not None

    def _next_replica(self, node: str) -> str:
        i = self.replicas.index(node) if node in self.replicas else -1
        return self.replicas[(i + 1) % len(self.replicas)]

    def _resend(self, rid: str, op: list[Any], node: str, now: float) -> None:
        op[1] = node
        op[3] = now
        op[4] = False
        self.counts["resent"] += 1
        self._send(node, op[2])

    # -- replies ---------------------------------------------------------------------------

    def _drain(self, window: tuple[float, float]) -> int:
        """Handle every reply waiting; returns how many requests completed."""
        done = 0
        lo, hi = window
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return done
            if len(frames) != 2:
                continue
            try:
                msgs, _ = self.codec.decode_all(frames[1])  # a Bundle holds several replies
            except WireError:
                continue
            for reply in msgs:
                if not isinstance(reply, ClientReply):
                    continue
                op = self.inflight.get(reply.request_id)
                if op is None:
                    continue  # a reply to an attempt already re-sent and answered
                if self.args.broadcast:
                    if not self._agreed(reply):
                        continue
                    del self.votes[reply.request_id]
                now = time.monotonic()
                if reply.status == "not_leader":
                    self.counts["redirects"] += 1
                    hint = reply.leader
                    if hint and hint != op[1] and hint in self.replicas:
                        self.node = hint
                        self._resend(reply.request_id, op, hint, now)
                    else:
                        # No (useful) hint: the cluster is electing; try the next replica soon.
                        nxt = self._next_replica(op[1])
                        self.node = nxt
                        op[1] = nxt
                        op[3] = now - self.args.timeout + 0.005  # re-sent by the scan in ~5 ms
                        op[4] = True
                    continue
                del self.inflight[reply.request_id]
                done += 1
                if reply.status == "ok":
                    self.counts["ok_total"] += 1
                    self.node = reply.node
                    if lo <= now < hi:
                        self.counts["ok"] += 1
                        self.latencies.append((now - op[0]) * 1000)
                else:
                    self.counts["fail"] += 1

    def _scan_timeouts(self, now: float) -> None:
        limit = now - self.args.timeout
        for rid, op in self.inflight.items():
            if op[3] <= limit:
                if op[4]:  # a deferred retry: its node was chosen when it was deferred
                    self._resend(rid, op, op[1], now)
                    continue
                self.counts["timeouts"] += 1
                nxt = self._next_replica(op[1]) if op[1] == self.node else self.node
                self._resend(rid, op, nxt, now)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        start = a.start_at if a.start_at is not None else time.monotonic()
        late = max(0.0, time.monotonic() - start)
        lo = start + a.warmup
        hi = lo + a.duration
        window = (lo, hi)
        # Wait for the common start (the socket is already connecting meanwhile).
        while (wait := start - time.monotonic()) > 0:
            time.sleep(min(wait, 0.05))
        closed = a.mode == "closed"
        interval = 1.0 / a.rate if not closed else 0.0
        next_send = max(start, time.monotonic()) if not closed else 0.0
        next_scan = time.monotonic() + TIMEOUT_SCAN
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        if closed:
            now = time.monotonic()
            for _ in range(a.inflight):
                self._new(now)
        while self.running:
            now = time.monotonic()
            issuing = now < hi
            if not issuing and (not self.inflight or now >= hi + a.grace):
                break
            if not parent_alive(a.parent_pid):
                break
            done = self._drain(window)
            now = time.monotonic()
            if closed:
                if issuing:
                    for _ in range(done):
                        self._new(now)
            elif issuing:
                while next_send <= now:
                    if len(self.inflight) >= a.inflight:
                        self.counts["skipped"] += 1
                    else:
                        if lo <= now < hi:
                            self.lags.append((now - next_send) * 1000)
                        self._new(now)
                    next_send += interval
            if now >= next_scan:
                self._scan_timeouts(now)
                next_scan = now + TIMEOUT_SCAN
            self._flush()
            # Sleep until a reply, the next scheduled send or the next timeout scan.
            wake = next_scan
            if not closed and issuing:
                wake = min(wake, next_send)
            timeout_ms = (wake - time.monotonic()) * 1000
            if timeout_ms > 0:
                # Rounded up: a send may leave up to 1 ms late (sched_lag_ms says how late;
                # latency counts from the actual send). Rounded down, the last millisecond
                # before every send was a busy loop: at 667 sends/s a generator burned two
                # thirds of a core, taken from the lab it measures.
                poller.poll(math.ceil(timeout_ms))
        window_s = a.duration
        result: dict[str, Any] = {
            "name": self.name,
            "mode": a.mode,
            "op": a.op,
            "read_mode": a.read_mode if a.op == "get" else "log",
            "offered_rate": a.rate if not closed else None,
            "inflight": a.inflight,
            "window_s": window_s,
            "late_start_s": round(late, 3),
            **self.counts,
            "open": len(self.inflight),
            "throughput": round(self.counts["ok"] / window_s, 1),
            "latency_ms": percentiles(self.latencies),
        }
        if not closed:
            result["sched_lag_ms"] = percentiles(self.lags, (50, 99))
        if a.samples:
            result["samples_ms"] = [round(x, 3) for x in self.latencies]
        return result

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="labctl.benchmarks.loadgen")
    p.add_argument("--router", required=True, help="the router's data endpoint")
    p.add_argument("--name", required=True, help="endpoint identity (c0..c15)")
    p.add_argument("--replicas", required=True)
    p.add_argument("--leader", default=None, help="first guess of the leader")
    p.add_argument("--mode", choices=("closed", "open"), default="closed")
    p.add_argument("--inflight", type=int, default=64, help="closed: in flight; open: cap")
    p.add_argument("--rate", type=float, default=0.0, help="open loop: requests/s")
    p.add_argument("--op", choices=("put", "get"), default="put")
    p.add_argument("--read-mode", choices=("log", "quorum", "lease"), default="log")
    p.add_argument("--keys", type=int, default=100)
    p.add_argument(
        "--conflict",
        type=float,
        default=None,
        help="share of requests on one hot key, the rest on keys of their own",
    )
    p.add_argument("--quorum", type=int, default=1, help="matching replies needed (PBFT: f+1)")
    p.add_argument("--broadcast", action="store_true", help="every request to every replica")
    p.add_argument("--value-size", type=int, default=16)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--grace", type=float, default=1.0, help="wait for stragglers after")
    p.add_argument("--timeout", type=float, default=1.0, help="re-send after this long")
    p.add_argument("--start-at", type=float, default=None, help="time.monotonic() to start")
    p.add_argument("--samples", action="store_true", help="every latency in the output")
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(argv)
    if args.mode == "open" and args.rate <= 0:
        p.error("--mode open needs --rate > 0")
    args.broadcast = args.broadcast or args.quorum > 1
    if args.conflict is not None and not 0.0 <= args.conflict <= 1.0:
        p.error("--conflict must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent(args.parent_pid)
    gen = LoadGen(args)
    on_stop_signals(lambda: setattr(gen, "running", False))
    try:
        result = gen.run()
    finally:
        gen.close()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
