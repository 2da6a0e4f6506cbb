"""The fault router: one process that every data-plane message of the lab crosses.

    python -m faults.router --telemetry TCP_ENDPOINT --parent-pid PID [--seed N] [--host H]

Endpoints (replicas r0.., clients c0.. or cli-<pid>, "broker") connect a DEALER and send
[dst, payload]; the router's data ROUTER socket receives [conn, dst, payload], takes the
source name from the connection, applies the rule of the directed link (src, dst) from its
LinkTable (pass, drop, loss, duplicate, delay with jitter) and forwards [conn-of-dst, src,
payload], so the receiver sees [src, payload]. Payloads are never decoded.

Names. In a lab (LABCTL_LAB_KEY set, nodes/auth.py) every connection authenticates with
ZeroMQ PLAIN at the handshake, and its name is the user it authenticated as: the ZeroMQ
identity a peer picks is only an opaque connection handle (endpoints pick 16 random
bytes), so nobody can send as, or receive for, a name it did not authenticate as, and a
restarted node's new connection takes its name over when it says hello (an empty `dst`;
every endpoint sends one on connect). Without a secret (tests of the router alone) the
identity is the name, as before, with ROUTER_HANDOVER so a restarted node takes it back.

Bounds: a frame above --max-frame bytes (default 4 MiB) is dropped and counted
(`oversize`); one above four times that closes its sender's connection inside libzmq
(ZMQ_MAXMSGSIZE) before it is ever buffered whole. The delay queue holds at most
MAX_QUEUED messages and MAX_QUEUED_BYTES per destination (`queue_full`). What libzmq and
the kernel hold for a destination that does not read (SIGSTOPped, wedged) is bounded in
bytes too: past MAX_UNREAD_BYTES forwarded to it since it last sent a frame, frames to it
are dropped (`queue_full`, traced as OVERFLOW) until it sends again, which every live
endpoint does at least once a second (its hello, nodes/process.py).

A second ROUTER socket takes control requests (msgpack maps, nodes.process.serve_control):
  {"cmd": "ping"}
  {"cmd": "set_links", "links": [{"src", "dst", "rule": {...}}]}   replaces the whole table
  {"cmd": "get_links"}                                            the table in force
  {"cmd": "stats"}                                                counters, per link and total

Replies use nodes.process's envelope. stats answers {"ok": true, "links": [{"src", "dst",
"sent", "delivered", "dropped", "delayed", "duplicated"}], "totals": {those five},
"malformed", "malformed_data", "malformed_control", "unroutable", "queue_full",
"send_errors", "queued", "queued_bytes", "oversize", "hellos", "connections", "auth",
"auth_rejected", "trace_kept", "trace_not_kept"}. Per link: sent = arrived from src for
dst; dropped = partition, loss, unroutable, oversize or full queue; delayed = held in the
delay queue; duplicated = forwarded twice (both copies count as delivered).

With --trace PATH every frame also gets a record in the message trace (faults/trace.py:
arrival time, wait, link, fate, size and the payload's first bytes, from which the message
type is decoded offline; a fixed-size record packed into the writer's buffer), written
every 250 ms or when the buffer fills; --trace-cap bounds how many are kept. A
frame over --max-frame is traced as ERROR (its head only), one with no route as UNROUTABLE.

Telemetry (PUSH to the supervisor): "router.ready" once, {"data", "control", "pid"};
"router.links" every 250 ms when a counter moved, {"links": [[src, dst, sent, delivered,
dropped, delayed, duplicated], ...], "malformed", "unroutable", "queued", "oversize",
"auth_rejected"}: only the rows that moved since the last report, at most MAX_ROWS of them
(the rest the next time), so a reader keeps the newest row per (src, dst); the counters in
a row are totals.
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
from nodes import auth
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
# Rows of one router.links report at most: a table of thousands of links changing at once
# would otherwise put megabytes a second into events.jsonl.
MAX_ROWS = 256
MAX_FRAME = 4 * 1024 * 1024  # default frame size limit (bytes), --max-frame
# Bytes held in the delay queue for one destination at most (a long delay on a link that
# carries snapshots must not hold gigabytes).
MAX_QUEUED_BYTES = 64 * 1024 * 1024
# Bytes forwarded to a destination that has sent nothing since, at most: libzmq's pipe
# counts messages (HWM), not bytes, so a paused receiver of large frames (snapshots) would
# otherwise make the router hold HWM x --max-frame bytes.
MAX_UNREAD_BYTES = 64 * 1024 * 1024
# Connections whose name the router remembers; past it the oldest are forgotten (one
# that is still alive is learnt again from its next frame). `labctl client` makes one per
# call, so a long lab would otherwise grow this table without bound.
MAX_CONNECTIONS = 16384

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
        "published",
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
        self.published: tuple[int, int] = (0, 0)  # (sent, dropped) in the last report

    def counters(self) -> list[Any]:
        return [self.src, self.dst, self.sent, self.delivered, self.dropped, self.delayed,
                self.duplicated]  # fmt: skip


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


_HEAD = tr.HEAD_BYTES
_COPY_WHOLE = 2048  # below this copying the payload is cheaper than a memoryview of it
_pack = tr.RECORD.pack_into
_pack_fast = tr.FAST_RECORD.pack_into
_REC = tr.RECORD.size
_NO_WAIT = tr.NO_WAIT


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
        secret: bytes | None = None,
        max_frame: int = MAX_FRAME,
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
        self.oversize = 0
        self.hellos = 0
        self.max_frame = max_frame
        self.queued_bytes: dict[bytes, int] = {}  # per destination, in the delay queue
        self.unread: dict[bytes, int] = {}  # name -> bytes forwarded since it last sent
        # connection handle -> name, and name -> the handle of its newest connection
        self.names: dict[bytes, bytes] = {}
        self.routes: dict[bytes, bytes] = {}
        self.secret = secret
        self._published: tuple[int, ...] | None = None
        self.zap = auth.serve(ctx, secret)  # before any bind: no handshake without it
        self.data = ctx.socket(zmq.ROUTER)
        self.control = ctx.socket(zmq.ROUTER)
        for sock in (self.data, self.control):
            sock.setsockopt(zmq.LINGER, 0)
            auth.as_server(sock, secret)
        self.data.setsockopt(zmq.MAXMSGSIZE, 4 * max_frame)
        self.data.setsockopt(zmq.SNDHWM, HWM)
        self.data.setsockopt(zmq.RCVHWM, HWM)
        # Without MANDATORY a ROUTER silently discards messages for unknown peers; we want
        # each one counted, per link, so an EHOSTUNREACH is raised and caught below.
        self.data.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # Without authentication the identity is the name: a restarted node reconnects with
        # it before the router has noticed the old connection died (SIGKILL leaves no
        # goodbye), and the new connection must win. With it, identities are random handles
        # and a collision can only be someone claiming another's handle: refused.
        self.data.setsockopt(zmq.ROUTER_HANDOVER, 0 if secret is not None else 1)
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
            "queued_bytes": sum(self.queued_bytes.values()),
            "oversize": self.oversize,
            "hellos": self.hellos,
            "connections": len(self.names),
            "auth": self.zap is not None,
            "auth_rejected": self.zap.rejected if self.zap is not None else 0,
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
        names = self.names
        routes = self.routes
        unread = self.unread
        limit = self.max_frame
        open_names = self.secret is None
        # Tracing costs a clock read per batch and one struct.pack_into per frame into the
        # writer's buffer (faults/trace.py), no Python object per frame. `off` is the
        # writer's offset, kept here and handed back around anything else that adds.
        trace = self.trace
        past_cap = None
        if trace is not None and trace.full:
            # Past the cap a frame is only counted (faults/trace.py): the fast path keeps a
            # tally instead of packing records that flush() would count and throw away.
            past_cap, trace = trace, None
        fast_delivered = 0
        buf = bytearray()
        off = 0
        now = 0.0
        pack_fast = _pack_fast
        rec = _REC
        if trace is not None:
            buf = trace.buf
            # Room for the whole batch: a frame makes at most two records (a duplicate).
            off = trace.reserve(2 * DRAIN_BATCH)
            # One clock reading per batch (one per frame cost a few per cent): a frame that
            # came in while the batch ran is stamped up to the batch's length early, a few
            # ms at full load, nothing when the lab is quiet enough to draw.
            now = time.monotonic()
        n = 0
        try:
            while n < DRAIN_BATCH:
                try:
                    conn = recv(_NOBLOCK)  # a ROUTER always has the identity and one more
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
                src = names.get(conn)
                if src is None:
                    src = self._learn(conn, dst_frame)
                unread[src] = 0  # it runs: what was sent to it is being read
                dst = dst_frame.bytes
                if not dst:
                    self.hellos += 1  # a hello: this connection is now where `src` lives
                    routes[src] = conn
                    continue
                link = links.get((src, dst))
                if link is None:
                    link = self._new_link((src, dst))
                link.sent += 1
                if len(payload) > limit:
                    link.dropped += 1
                    self.oversize += 1
                    if trace is not None:
                        _pack(buf, off, now, _NO_WAIT, link.tid, len(payload), 0, tr.ERROR,
                              _head(payload))  # fmt: skip
                        off += _REC
                    continue
                if link.fast:
                    # The fast path: no rule, nothing queued. Three frames out, no lists built.
                    to = routes.get(dst)
                    if to is None:
                        if not open_names:
                            link.dropped += 1
                            self.unroutable += 1
                            if trace is not None:
                                _pack(buf, off, now, _NO_WAIT, link.tid, len(payload), 0,
                                      tr.UNROUTABLE, _head(payload))  # fmt: skip
                                off += _REC
                            continue
                        to = dst
                    backlog = unread.get(dst, 0) + len(payload)
                    if backlog > MAX_UNREAD_BYTES:  # it has not read for a long while
                        link.dropped += 1
                        self.queue_full += 1
                        if trace is not None:
                            _pack(buf, off, now, _NO_WAIT, link.tid, len(payload), 0,
                                  tr.OVERFLOW, _head(payload))  # fmt: skip
                            off += _REC
                        continue
                    try:
                        send(to, _MORE)
                        send(src, _MORE)
                        send(payload, _NOBLOCK, copy=False)
                        link.delivered += 1
                        fast_delivered += 1
                        unread[dst] = backlog
                        if trace is not None:
                            # Inline, and the whole payload: the record keeps its head.
                            size = len(payload)
                            head = payload.bytes if size <= _COPY_WHOLE else _head(payload)
                            pack_fast(buf, off, now, link.tid, size, head)
                            off += rec
                    except zmq.ZMQError as e:
                        fate = self._count_send_failure(link, e, dst, to)
                        if trace is not None:
                            _pack(buf, off, now, _NO_WAIT, link.tid, len(payload), 0, fate,
                                  _head(payload))  # fmt: skip
                            off += _REC
                else:
                    if trace is not None:
                        trace.off = off
                    self._apply_rule(link, src, dst, payload)
                    if trace is not None:
                        off = trace.off
        finally:
            if trace is not None:
                trace.off = off
            elif past_cap is not None:
                past_cap.not_kept[tr.DELIVERED] += fast_delivered
        return n

    def _learn(self, conn: bytes, frame: zmq.Frame) -> bytes:
        """The name of a connection seen for the first time: the user it authenticated as
        (its identity itself when the router runs without a secret)."""
        if self.secret is None:
            name = conn
        else:
            try:
                name = frame.get("User-Id").encode()
            except (zmq.ZMQError, AttributeError, UnicodeError):
                name = b""
            if not name:  # cannot happen behind ZAP; an unnamed frame gets no name's rights
                name = b"?"
        if len(self.names) >= MAX_CONNECTIONS:
            for old in list(self.names)[: MAX_CONNECTIONS // 4]:
                gone = self.names.pop(old)
                if self.routes.get(gone) == old:
                    del self.routes[gone]
                    self.unread.pop(gone, None)
        self.names[conn] = name
        # The newest connection of a name that speaks is where it lives (a restarted node:
        # its hello, which data_endpoint sends before anything else, is its first frame).
        self.routes[name] = conn
        return name

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
        size = len(payload) * copies
        held = self.queued_bytes.get(dst, 0)
        if len(self.heap) + copies > MAX_QUEUED or held + size > MAX_QUEUED_BYTES:
            link.dropped += 1
            self.queue_full += 1
            self._trace(now, None, link, tr.OVERFLOW, payload)
            return
        self.queued_bytes[dst] = held + size
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
            left = self.queued_bytes[dst] - len(payload)
            if left:
                self.queued_bytes[dst] = left
            else:
                del self.queued_bytes[dst]
            if link.pending == 0 and link.rule is None:
                link.fast = True
            self._send(link, dst, src, payload, t_in, fate)

    def _send(
        self, link: _Link, dst: bytes, src: bytes, payload: zmq.Frame, t_in: float, fate: int
    ) -> None:
        """Forward one frame that took the slow path; `fate` is how the trace records it
        if it gets out (DELIVERED, or DUPLICATE for a rule's second copy)."""
        to = self.routes.get(dst)
        if to is None:
            if self.secret is not None:
                link.dropped += 1
                self.unroutable += 1
                self._trace(t_in, None, link, tr.UNROUTABLE, payload)
                return
            to = dst
        backlog = self.unread.get(dst, 0) + len(payload)
        if backlog > MAX_UNREAD_BYTES:  # see the fast path in drain()
            link.dropped += 1
            self.queue_full += 1
            self._trace(t_in, None, link, tr.OVERFLOW, payload)
            return
        try:
            self.data.send(to, _MORE)
            self.data.send(src, _MORE)
            # copy=False shares the frame's buffer, so a duplicate can send it a second time.
            self.data.send(payload, _NOBLOCK, copy=False)
            link.delivered += 1
            self.unread[dst] = backlog
        except zmq.ZMQError as e:
            self._trace(t_in, None, link, self._count_send_failure(link, e, dst, to), payload)
            return
        if self.trace is not None:
            self._trace(t_in, time.monotonic() - t_in, link, fate, payload)

    def _trace(
        self, t_in: float, wait: float | None, link: _Link, fate: int, payload: zmq.Frame
    ) -> None:
        if self.trace is not None:
            self.trace.add(t_in, wait, link.tid, fate, len(payload), _head(payload))

    def _count_send_failure(self, link: _Link, e: zmq.ZMQError, dst: bytes, to: bytes) -> int:
        """Count a failed send; returns its fate for the trace."""
        # Only the first frame can fail (ROUTER checks the peer there): nothing half-sent.
        link.dropped += 1
        if e.errno == zmq.EHOSTUNREACH:
            self.unroutable += 1
            if self.routes.get(dst) == to:  # that connection is gone: forget it
                del self.routes[dst]
                self.names.pop(to, None)
            return tr.UNROUTABLE
        if e.errno == zmq.EAGAIN:
            self.queue_full += 1  # the receiver's pipe is full: paused or wedged
            return tr.OVERFLOW
        self.send_errors += 1
        return tr.ERROR

    # ------------------------------------------------------------------------------ loop

    def publish(self) -> None:
        """Emit router.links with the rows that moved since the last emission."""
        links = self._all_links()
        signature = (
            sum(link.sent for link in links),
            sum(link.delivered for link in links),
            sum(link.dropped for link in links),
            self.malformed + self.control_counters.get("malformed", 0),
            len(self.heap),
            self.oversize,
            self.zap.rejected if self.zap is not None else 0,
        )
        if signature == self._published:
            return
        rows = []
        for link in links:
            now = (link.sent, link.dropped)
            if now != link.published:
                if len(rows) >= MAX_ROWS:
                    break  # the rest go out next time: their `published` did not move
                link.published = now
                rows.append(link.counters())
        if len(rows) < MAX_ROWS:
            self._published = signature
        self.telemetry.emit(
            "router.links",
            links=rows,
            malformed=signature[3],
            unroutable=self.unroutable,
            queued=len(self.heap),
            oversize=self.oversize,
            auth_rejected=self.zap.rejected if self.zap is not None else 0,
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
    p.add_argument("--max-frame", type=int, default=MAX_FRAME, help="largest frame forwarded")
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
    router = Router(ctx, telemetry, host=args.host, seed=args.seed, parent_pid=args.parent_pid,
                    secret=auth.env_secret(), max_frame=max(1024, args.max_frame),
                    trace=trace)  # fmt: skip
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
