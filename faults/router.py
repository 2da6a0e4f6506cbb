"""The fault router: one process that every data-plane message of the lab crosses.

    python -m faults.router --telemetry TCP_ENDPOINT --parent-pid PID [--seed N] [--host H]

Endpoints (replicas r0.., clients c0.. or cli-<pid>, "broker") connect a DEALER whose
IDENTITY is their name and send [dst, payload]; the router's data ROUTER socket receives
[src, dst, payload], applies the rule of the directed link (src, dst) from its LinkTable
(pass, drop, loss, duplicate, delay with jitter) and forwards [dst, src, payload], so the
receiver sees [src, payload]. Payloads are never decoded.

A second ROUTER socket takes control requests (msgpack maps, nodes.process.serve_control):
  {"cmd": "ping"}
  {"cmd": "set_links", "links": [{"src", "dst", "rule": {...}}]}   replaces the whole table
  {"cmd": "get_links"}                                            the table in force
  {"cmd": "stats"}                                                counters, per link and total

Replies use nodes.process's envelope. stats answers {"ok": true, "links": [{"src", "dst",
"sent", "delivered", "dropped", "delayed", "duplicated"}], "totals": {those five},
"malformed", "malformed_data", "malformed_control", "unroutable", "queue_full",
"send_errors", "queued", "trace_kept", "trace_not_kept"}. Per link: sent = arrived from src
for dst; dropped = partition, loss, unroutable or full queue; delayed = held in the delay
queue; duplicated = forwarded twice (both copies count as delivered).

With --trace PATH every frame also gets a record in the message trace (faults/trace.py:
arrival time, wait, link, fate, size and the payload's first bytes, from which the message
type is decoded offline), written every 250 ms; --trace-cap bounds how many are kept.

Telemetry (PUSH to the supervisor): "router.ready" once, {"data", "control", "pid"};
"router.links" every 250 ms when a counter moved, {"links": [[src, dst, sent, delivered,
dropped, delayed, duplicated], ...], "malformed", "unroutable", "queued"}.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import signal
import sys
import time
from types import FrameType
from typing import Any

import zmq

from faults import trace as tr
from faults.links import LinkRule, LinkTable
from nodes.process import (
    Telemetry,
    die_with_parent,
    error,
    log,
    ok,
    parent_alive,
    serve_control,
)

# Deep enough that a burst (an election storm, a client blast) never meets the HWM; a full
# pipe means a paused or wedged receiver, and then dropping is the honest network behaviour.
HWM = 100_000
# How many data messages to forward before looking at the delay queue and control socket
# again: large enough to amortise the poll, small enough that a flood cannot starve them.
DRAIN_BATCH = 512
# The longest the loop sleeps: bounds how late telemetry, parent checks and SIGTERM are seen.
MAX_POLL_MS = 100
TICK = 0.25
# The nap between polls in the last millisecond before a release: the longest a message that
# arrives then waits extra, and the price of not spinning a core while delays are active.
FINE_NAP = 0.0001
# Messages held in the delay queue at most; past it new held messages are dropped (counted),
# so a long delay on a busy link cannot eat the laptop's memory.
MAX_QUEUED = 500_000
# Distinct links with their own counters at most. Garbage destinations (a fuzzer, a buggy
# node) would otherwise grow the table and the telemetry without bound; the rest share one.
MAX_LINKS = 4096

_NOBLOCK = zmq.NOBLOCK
_MORE = zmq.NOBLOCK | zmq.SNDMORE


class _Link:
    """One directed link's rule and counters. `fast` caches "no rule and nothing queued"."""

    __slots__ = (
        "delayed",
        "delivered",
        "dropped",
        "dst",
        "duplicated",
        "fast",
        "last_release",
        "pending",
        "rule",
        "sent",
        "src",
        "tid",
    )

    def __init__(self, src: str, dst: str, rule: LinkRule | None, tid: int = 0) -> None:
        self.src = src
        self.dst = dst
        self.rule = rule
        self.tid = tid  # the link's id in the message trace
        self.pending = 0  # messages of this link in the delay queue
        self.last_release = 0.0  # release time of its last queued message (FIFO floor)
        self.fast = rule is None
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self.delayed = 0
        self.duplicated = 0

    def counters(self) -> list[Any]:
        return [self.src, self.dst, self.sent, self.delivered, self.dropped, self.delayed,
                self.duplicated]  # fmt: skip


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


_HEAD = tr.HEAD_BYTES
_COPY_WHOLE = 2048  # below this copying the payload is cheaper than a memoryview of it


def _head(payload: zmq.Frame) -> bytes:
    """The payload's first bytes for the trace (its type is decoded offline)."""
    if len(payload) <= _COPY_WHOLE:
        return payload.bytes[:_HEAD]
    return payload.buffer[:_HEAD].tobytes()


class _Stop(BaseException):
    """Raised from the signal handler so a blocking poll returns at once (a BaseException:
    a handler's catch-all must not swallow a SIGTERM)."""


class Router:
    """The router's state and loop. Build, `bind()`, then `run()`; `close()` always."""

    def __init__(
        self,
        ctx: zmq.Context,
        telemetry: Telemetry,
        host: str = "127.0.0.1",
        seed: int | None = None,
        parent_pid: int | None = None,
        trace: tr.TraceWriter | None = None,
    ) -> None:
        self.ctx = ctx
        self.telemetry = telemetry
        self.host = host
        self.parent_pid = parent_pid
        self.rng = random.Random(seed)
        self.table = LinkTable()
        self._rules: dict[tuple[bytes, bytes], LinkRule] = {}  # table, keyed like the wire
        self.links: dict[tuple[bytes, bytes], _Link] = {}
        self.trace = trace
        self._overflow = self._make_link(b"*", b"*", None)
        # (release time, sequence, link, dst, src, payload, arrival time, trace fate); the
        # sequence keeps FIFO on ties.
        self.heap: list[tuple[float, int, _Link, bytes, bytes, zmq.Frame, float, int]] = []
        self._seq = 0
        self.malformed = 0
        self.control_counters: dict[str, int] = {}
        self.unroutable = 0
        self.queue_full = 0
        self.send_errors = 0
        self._published: tuple[int, ...] | None = None
        self.data = ctx.socket(zmq.ROUTER)
        self.control = ctx.socket(zmq.ROUTER)
        for sock in (self.data, self.control):
            sock.setsockopt(zmq.LINGER, 0)
        self.data.setsockopt(zmq.SNDHWM, HWM)
        self.data.setsockopt(zmq.RCVHWM, HWM)
        # Without MANDATORY a ROUTER silently discards messages for unknown peers; we want
        # each one counted, per link, so an EHOSTUNREACH is raised and caught below.
        self.data.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A restarted node reconnects with the same identity before the router has noticed the
        # old connection died (SIGKILL leaves no goodbye); the new connection must win.
        self.data.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.data_endpoint = ""
        self.control_endpoint = ""

    # ----------------------------------------------------------------- setup and control

    def bind(self, data_port: int = 0) -> dict[str, str]:
        """Bind both sockets; the data socket on `data_port` when given (a restarted
        router takes its old port back, so every endpoint's connection comes back)."""
        base = f"tcp://{self.host}"
        if data_port:
            self.data.bind(f"{base}:{data_port}")
            self.data_endpoint = f"{base}:{data_port}"
        else:
            self.data_endpoint = f"{base}:{self.data.bind_to_random_port(base)}"
        self.control_endpoint = f"{base}:{self.control.bind_to_random_port(base)}"
        return {"data": self.data_endpoint, "control": self.control_endpoint}

    def set_table(self, table: LinkTable) -> None:
        """Swap the whole table at once. Queued messages keep their release time, and a link
        that still has queued messages stays off the fast path until they are out (FIFO)."""
        rules: dict[tuple[bytes, bytes], LinkRule] = {}
        for (src, dst), rule in table.items():
            if not rule.is_pass():
                rules[(src.encode(), dst.encode())] = rule
        self.table = table
        self._rules = rules
        for key, link in self.links.items():
            link.rule = rules.get(key)
            link.fast = link.rule is None and link.pending == 0
        # A link named by a rule always gets its own counters, even past MAX_LINKS.
        for key, rule in rules.items():
            if key not in self.links:
                self.links[key] = self._make_link(key[0], key[1], rule)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "ping":
            return ok(pid=os.getpid())
        if cmd == "set_links":
            if "links" not in request:
                return error("set_links needs 'links': a list of {src, dst, rule}")
            try:
                table = LinkTable.from_wire(request["links"])
            except ValueError as e:
                return error(str(e), "invalid_links")
            self.set_table(table)
            return ok(links=len(table))
        if cmd == "get_links":
            return ok(links=self.table.to_wire())
        if cmd == "stats":
            return ok(**self.stats())
        return error(f"unknown command {cmd!r}", "unknown_command")

    def stats(self) -> dict[str, Any]:
        fields = ("sent", "delivered", "dropped", "delayed", "duplicated")
        links = [link for link in self._all_links() if link.sent or link.dropped]
        totals = {f: sum(getattr(link, f) for link in links) for f in fields}
        control_malformed = self.control_counters.get("malformed", 0)
        return {
            "links": [
                {"src": link.src, "dst": link.dst, **{f: getattr(link, f) for f in fields}}
                for link in links
            ],
            "totals": totals,
            "malformed": self.malformed + control_malformed,
            "malformed_data": self.malformed,
            "malformed_control": control_malformed,
            "control": dict(self.control_counters),  # malformed, refused, bad_requests
            "unroutable": self.unroutable,
            "queue_full": self.queue_full,
            "send_errors": self.send_errors,
            "queued": len(self.heap),
            "trace_kept": self.trace.kept if self.trace else 0,
            "trace_not_kept": sum(self.trace.not_kept) if self.trace else 0,
        }

    def _all_links(self) -> list[_Link]:
        links = list(self.links.values())
        if self._overflow.sent:
            links.append(self._overflow)
        return links

    def _new_link(self, key: tuple[bytes, bytes]) -> _Link:
        if len(self.links) >= MAX_LINKS:
            return self._overflow  # never has a rule: rules are created in set_table
        link = self.links[key] = self._make_link(key[0], key[1], self._rules.get(key))
        return link

    def _make_link(self, src: bytes, dst: bytes, rule: LinkRule | None) -> _Link:
        s, d = _name(src), _name(dst)
        return _Link(s, d, rule, self.trace.link(s, d) if self.trace else 0)

    # ------------------------------------------------------------------------ data plane

    def drain(self) -> int:
        """Forward what the data socket holds, up to DRAIN_BATCH messages, never blocking."""
        # Frames are read one by one rather than with recv_multipart: its RCVMORE getsockopt
        # per frame costs more than the forwarding itself, while a Frame's `more` is free.
        # The payload stays a zmq.Frame and goes out zero-copy; it is never decoded.
        recv = self.data.recv
        send = self.data.send
        links = self.links
        # Tracing costs a clock read, a head copy and one tuple per frame on this path; the
        # tuple is encoded at the next flush (faults/trace.py).
        # `tap` is bound per call: a flush replaces the pending list (only at the end here).
        trace = self.trace
        tap = trace.pending.append if trace is not None else None
        # One clock reading per batch (one per frame cost a few per cent): a frame that came
        # in while the batch ran is stamped up to the batch's length early, a few ms at
        # full load, nothing when the lab is quiet enough to draw.
        now = time.monotonic() if trace is not None else 0.0
        n = 0
        while n < DRAIN_BATCH:
            try:
                src = recv(_NOBLOCK)  # a ROUTER always has the identity and at least one more
            except zmq.Again:
                break
            n += 1
            # The rest of a multipart message is already here: NOBLOCK cannot fail below.
            dst_frame = recv(_NOBLOCK, copy=False)
            if not dst_frame.more:
                self.malformed += 1  # the endpoint sent a single frame
                continue
            payload = recv(_NOBLOCK, copy=False)
            if payload.more:
                self._discard_rest()
                self.malformed += 1
                continue
            dst = dst_frame.bytes
            link = links.get((src, dst))
            if link is None:
                link = self._new_link((src, dst))
            link.sent += 1
            if link.fast:
                # The fast path: no rule, nothing queued. Three frames out, no lists built.
                try:
                    send(dst, _MORE)
                    send(src, _MORE)
                    send(payload, _NOBLOCK, copy=False)
                    link.delivered += 1
                    if tap is not None:
                        size = len(payload)  # inline: a call to _head costs a tenth more
                        head = payload.bytes[:_HEAD] if size <= _COPY_WHOLE else _head(payload)
                        tap((now, 0, link.tid, 0, size, head))
                except zmq.ZMQError as e:
                    fate = self._count_send_failure(link, e)
                    if tap is not None:
                        tap((now, None, link.tid, fate, len(payload), _head(payload)))
            else:
                self._apply_rule(link, src, dst, payload)
        if trace is not None and len(trace.pending) >= tr.FLUSH_RECORDS:
            trace.flush()
        return n

    def _discard_rest(self) -> None:
        while self.data.recv(_NOBLOCK, copy=False).more:
            pass

    def _apply_rule(self, link: _Link, src: bytes, dst: bytes, payload: zmq.Frame) -> None:
        rule = link.rule
        rng = self.rng
        copies = 1
        now = time.monotonic()
        if rule is not None:
            lost = not rule.drop and rule.loss and rng.random() < rule.loss
            if rule.drop or lost:
                link.dropped += 1
                self._trace(now, None, link, tr.LOST if lost else tr.DROPPED, payload)
                return
            if rule.duplicate and rng.random() < rule.duplicate:
                copies = 2
                link.duplicated += 1
        release = now
        if rule is not None and (rule.delay or rule.jitter):
            wait = rule.delay
            if rule.jitter:
                wait += rng.uniform(-rule.jitter, rule.jitter)
            release = now + max(wait, 0.0)
        if link.pending:
            # Never overtake an earlier message of the same link, whatever the jitter sampled
            # or however the rule changed since it was queued: while the link has messages in
            # the queue, this one queues behind them even if it is due already.
            release = max(release, link.last_release)
        elif release <= now:
            for copy in range(copies):
                self._send(link, dst, src, payload, now, tr.DUPLICATE if copy else tr.DELIVERED)
            return
        if len(self.heap) + copies > MAX_QUEUED:
            link.dropped += 1
            self.queue_full += 1
            self._trace(now, None, link, tr.OVERFLOW, payload)
            return
        link.delayed += 1
        link.last_release = release
        for copy in range(copies):
            self._seq += 1
            fate = tr.DUPLICATE if copy else tr.DELIVERED
            heapq.heappush(self.heap, (release, self._seq, link, dst, src, payload, now, fate))
            link.pending += 1
        link.fast = False

    def release_due(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, link, dst, src, payload, t_in, fate = heapq.heappop(heap)
            link.pending -= 1
            if link.pending == 0 and link.rule is None:
                link.fast = True
            self._send(link, dst, src, payload, t_in, fate)

    def _send(
        self, link: _Link, dst: bytes, src: bytes, payload: zmq.Frame, t_in: float, fate: int
    ) -> None:
        """Forward one frame that took the slow path; `fate` is how the trace records it
        if it gets out (DELIVERED, or DUPLICATE for a rule's second copy)."""
        try:
            self.data.send(dst, _MORE)
            self.data.send(src, _MORE)
            # copy=False shares the frame's buffer, so a duplicate can send it a second time.
            self.data.send(payload, _NOBLOCK, copy=False)
            link.delivered += 1
        except zmq.ZMQError as e:
            self._trace(t_in, None, link, self._count_send_failure(link, e), payload)
            return
        if self.trace is not None:
            self._trace(t_in, time.monotonic() - t_in, link, fate, payload)

    def _trace(
        self, t_in: float, wait: float | None, link: _Link, fate: int, payload: zmq.Frame
    ) -> None:
        if self.trace is not None:
            self.trace.pending.append((t_in, wait, link.tid, fate, len(payload), _head(payload)))

    def _count_send_failure(self, link: _Link, e: zmq.ZMQError) -> int:
        """Count a failed send; returns its fate for the trace."""
        # Only the first frame can fail (ROUTER checks the peer there): nothing half-sent.
        link.dropped += 1
        if e.errno == zmq.EHOSTUNREACH:
            self.unroutable += 1
            return tr.UNROUTABLE
        if e.errno == zmq.EAGAIN:
            self.queue_full += 1  # the receiver's pipe is full: paused or wedged
            return tr.OVERFLOW
        self.send_errors += 1
        return tr.ERROR

    # ------------------------------------------------------------------------------ loop

    def publish(self) -> None:
        """Emit router.links when any counter moved since the last emission."""
        links = self._all_links()
        signature = (
            sum(link.sent for link in links),
            sum(link.delivered for link in links),
            sum(link.dropped for link in links),
            self.malformed + self.control_counters.get("malformed", 0),
            len(self.heap),
        )
        if signature == self._published:
            return
        self._published = signature
        self.telemetry.emit(
            "router.links",
            links=[link.counters() for link in links if link.sent or link.dropped],
            malformed=signature[3],
            unroutable=self.unroutable,
            queued=len(self.heap),
        )

    def run(self) -> None:
        """Serve until the parent is gone; returns normally then, raises _Stop on a signal."""
        poller = zmq.Poller()
        poller.register(self.data, zmq.POLLIN)
        poller.register(self.control, zmq.POLLIN)
        data, control = self.data, self.control
        heap = self.heap
        monotonic = time.monotonic
        next_tick = monotonic() + TICK
        while True:
            now = monotonic()
            if heap and heap[0][0] <= now:
                self.release_due(now)
            if now >= next_tick:
                next_tick = now + TICK
                if not parent_alive(self.parent_pid):
                    return
                self.publish()
                if self.trace is not None:
                    self.trace.flush()
            # Sleep until the next release in whole ms rounded down (zmq poll's resolution),
            # so we wake a little early; the last fraction of a ms is covered by short naps
            # between non-blocking polls. Delays stay precise to ~0.1 ms without a busy spin.
            timeout = min(MAX_POLL_MS, int((next_tick - now) * 1000) + 1)
            if heap:
                timeout = min(timeout, int((heap[0][0] - now) * 1000))
            events = dict(poller.poll(max(timeout, 0)))
            if not events and timeout <= 0 and heap:
                time.sleep(min(FINE_NAP, max(heap[0][0] - monotonic(), 0.0)))
            if heap:
                now = monotonic()
                if heap[0][0] <= now:
                    self.release_due(now)
            if data in events:
                self.drain()
            if control in events:
                serve_control(control, self.handle, self.control_counters)

    def close(self) -> None:
        self.data.close(linger=0)
        self.control.close(linger=0)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m faults.router", description=__doc__.split("\n")[0])
    p.add_argument("--telemetry", required=True, help="supervisor's telemetry PULL endpoint")
    p.add_argument("--parent-pid", type=int, required=True, help="exit when this pid is gone")
    p.add_argument("--seed", type=int, default=None, help="seed of loss/duplicate/jitter draws")
    p.add_argument("--host", default="127.0.0.1", help="address to bind both sockets on")
    p.add_argument("--trace", default=None, help="write the message trace to this file")
    p.add_argument("--trace-cap", type=int, default=tr.DEFAULT_CAP, help="frames kept at most")
    p.add_argument("--data-port", type=int, default=0, help="the data port (a restart's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    die_with_parent(args.parent_pid)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    ctx = zmq.Context()
    telemetry = Telemetry(ctx, args.telemetry, "router")
    trace = tr.TraceWriter(args.trace, args.trace_cap, time.monotonic()) if args.trace else None
    router = Router(
        ctx, telemetry, host=args.host, seed=args.seed, parent_pid=args.parent_pid, trace=trace
    )
    # Installed only now, so _Stop can only be raised inside the try that handles it.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        endpoints = router.bind(args.data_port)
        log("router", f"pid {os.getpid()}, seed {args.seed}: data {endpoints.get('data')}, "
            f"control {endpoints.get('control')}")  # fmt: skip
        telemetry.emit("router.ready", pid=os.getpid(), **endpoints)
        router.run()
    except _Stop:
        pass
    finally:
        # Ignore further signals while closing: a second SIGTERM must not leave a half-closed
        # context that blocks term() forever.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        router.publish()  # the last counters, so the run record is complete
        if trace is not None:
            trace.close()
        log("router", "stopping")
        router.close()
        telemetry.close()
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
