"""The TCP fault proxy: the lab's link faults applied to real TCP traffic between programs
the lab does not control (etcd members), per directed link.

    python -m faults.tcpproxy --spec JSON --telemetry EP --parent-pid PID [--seed N]

The spec names the listeners and who is who:

    {"listen": [{"dst": "r0", "host": "10.213.1.254", "port": 2380,
                 "upstream": ["10.213.1.2", 2380]}, ...],
     "sources": {"10.213.1.2": "r0", ...}}

A connection accepted on a listener is to `dst`; the sender is the name its source address
belongs to (every member has an address of its own, in its own network namespace:
labctl/etcd/netns.py), so the proxy knows the directed link without reading the protocol.
A connection from an address it does not know is closed at once. Each accepted connection
gets one connection upstream (the proxy -> dst hop is not faulted), and two pumps: the
bytes the sender writes cross link (src, dst), the bytes that come back cross (dst, src).
etcd streams raft messages both ways on one connection (a member reads its peer's
messages from the response of a GET it sent), so a one-way partition acts on one
direction of a connection, as the router acts on one direction of a link.

The rules are the router's (faults/links.py, set whole with `set_links` from the
supervisor, which folds the faults in force with faults/linkplan.py). What each means for
a byte stream, which is what TCP makes of a network's packets:

- drop (partition): the direction stalls: the proxy stops reading from the sender, so its
  kernel buffers fill and its writes block, and forwards nothing it holds. Nothing is
  reset and nothing is lost: as after a real partition, what was in flight arrives when it
  heals, unless the program gave up on the connection first (etcd closes a peer
  connection after 5 s without a read and dials again; the new connection stalls too).
  Unlike a real partition the TCP handshake itself completes (the proxy accepts in the
  kernel), so a dial "succeeds" and then nothing arrives.
- delay, jitter: every chunk read is released at its arrival + delay +- jitter, never
  before the chunk ahead of it (a byte stream cannot reorder).
- loss p: a lost segment is retransmitted by TCP, not lost: a chunk is held back one
  retransmission timeout (200 ms, Linux's minimum RTO), doubling for each loss in a row
  (up to 6.4 s), then delivered in order. Seeded RNG, per link.
- duplicate: TCP discards duplicate segments: no effect on the stream (counted only).

Control (a ROUTER socket, nodes.process.serve_control): ping, set_links, get_links, stats.
Telemetry: "node.ready" {control, pid} once listening; "proxy.links" every second when a
counter moved: rows [src, dst, bytes, chunks, held, connections] (totals).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
from collections import deque
from typing import Any

import zmq

from faults.links import PASS, LinkRule, LinkTable
from nodes import auth
from nodes.process import (
    Telemetry,
    control_socket,
    die_with_parent,
    error,
    ok,
    parent_alive,
    serve_control,
)

CHUNK = 65536
MAX_HELD = 4 << 20  # bytes a direction holds (delay queue) before it stops reading
RTO_MIN = 0.2  # Linux's minimum retransmission timeout
RTO_MAX = 6.4
REPORT_EVERY = 1.0


class LinkStats:
    __slots__ = ("bytes", "chunks", "connections", "held")

    def __init__(self) -> None:
        self.bytes = self.chunks = self.held = self.connections = 0


class Proxy:
    """The asyncio side: listeners, pumps, the table in force."""

    def __init__(self, spec: dict[str, Any], seed: int) -> None:
        self.listen: list[dict[str, Any]] = list(spec["listen"])
        self.sources: dict[str, str] = dict(spec["sources"])
        self.table = LinkTable()
        self.seed = seed
        self.rngs: dict[tuple[str, str], random.Random] = {}
        self.stats: dict[tuple[str, str], LinkStats] = {}
        self.changed = asyncio.Event()  # set (and replaced) whenever the table changes
        self.refused = 0
        self.upstream_errors = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- the table -----------------------------------------------------------------------

    def set_table(self, table: LinkTable) -> None:
        """Runs on the event loop (call_soon_threadsafe from the control thread)."""
        self.table = table
        old, self.changed = self.changed, asyncio.Event()
        old.set()  # every pump waiting on a rule looks again

    def rule(self, link: tuple[str, str]) -> LinkRule:
        return self.table.rule(*link) if self.table else PASS

    async def open(self, link: tuple[str, str]) -> LinkRule:
        """The link's rule once it is not a partition (waits while it is)."""
        while True:
            rule = self.rule(link)
            if not rule.drop:
                return rule
            await self.changed.wait()

    def link_stats(self, link: tuple[str, str]) -> LinkStats:
        s = self.stats.get(link)
        if s is None:
            s = self.stats[link] = LinkStats()
        return s

    def rng(self, link: tuple[str, str]) -> random.Random:
        r = self.rngs.get(link)
        if r is None:
            r = self.rngs[link] = random.Random(f"{self.seed}:{link[0]}->{link[1]}")
        return r

    # -- connections ---------------------------------------------------------------------

    async def serve(self) -> list[asyncio.AbstractServer]:
        self.loop = asyncio.get_running_loop()
        servers = []
        for entry in self.listen:
            dst = str(entry["dst"])
            upstream = (str(entry["upstream"][0]), int(entry["upstream"][1]))

            async def accepted(r: asyncio.StreamReader, w: asyncio.StreamWriter, dst: str = dst,
                               upstream: tuple[str, int] = upstream) -> None:  # fmt: skip
                await self.connection(r, w, dst, upstream)

            servers.append(await asyncio.start_server(accepted, entry["host"], int(entry["port"]),
                                                      reuse_address=True))  # fmt: skip
        return servers

    async def connection(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, dst: str,
                         upstream: tuple[str, int]) -> None:  # fmt: skip
        peer = w.get_extra_info("peername")
        src = self.sources.get(peer[0]) if peer else None
        if src is None or src == dst:
            self.refused += 1
            w.close()
            return
        try:
            ur, uw = await asyncio.open_connection(*upstream)
        except OSError:
            # dst's member is down: its host would answer with a reset, and so does this.
            self.upstream_errors += 1
            w.close()
            return
        self.link_stats((src, dst)).connections += 1
        pumps = [asyncio.ensure_future(self.pump(r, uw, (src, dst))),
                 asyncio.ensure_future(self.pump(ur, w, (dst, src)))]  # fmt: skip
        try:
            await asyncio.gather(*pumps)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for p in pumps:
                p.cancel()
            for writer in (w, uw):
                writer.close()

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   link: tuple[str, str]) -> None:  # fmt: skip
        """One direction of one connection: a reader that stamps chunks and a writer that
        releases them by the link's rule, in order."""
        held: deque[tuple[float, bytes]] = deque()
        state = {"bytes": 0, "eof": False}
        ready = asyncio.Event()
        room = asyncio.Event()
        room.set()
        stats = self.link_stats(link)

        async def read() -> None:
            while True:
                await self.open(link)  # a partition: stop reading, the sender's writes block
                await room.wait()
                data = await reader.read(CHUNK)
                if not data:
                    state["eof"] = True
                    ready.set()
                    return
                held.append((time.monotonic(), data))
                state["bytes"] += len(data)
                if state["bytes"] >= MAX_HELD:
                    room.clear()
                ready.set()

        async def write() -> None:
            last = 0.0
            losses = 0
            while True:
                while not held:
                    if state["eof"]:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    ready.clear()
                    await ready.wait()
                rule = await self.open(link)
                arrived, data = held[0]
                release = arrived + rule.delay
                if rule.jitter:
                    release += self.rng(link).uniform(-rule.jitter, rule.jitter)
                if rule.loss and self.rng(link).random() < rule.loss:
                    release = max(release, time.monotonic()) + min(RTO_MIN * 2**losses, RTO_MAX)
                    losses += 1
                    stats.held += 1
                else:
                    losses = 0
                release = max(release, last)
                wait = release - time.monotonic()
                if wait > 0:
                    if rule.delay or rule.jitter:
                        stats.held += 1
                    # A partition that begins meanwhile holds the chunk: look again after.
                    changed = self.changed
                    try:
                        await asyncio.wait_for(changed.wait(), wait)
                        continue
                    except TimeoutError:
                        pass
                if self.rule(link).drop:
                    continue
                held.popleft()
                state["bytes"] -= len(data)
                if state["bytes"] < MAX_HELD:
                    room.set()
                last = release
                writer.write(data)
                stats.bytes += len(data)
                stats.chunks += 1
                await writer.drain()

        tasks = [asyncio.ensure_future(read()), asyncio.ensure_future(write())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    def rows(self) -> list[list[Any]]:
        return [[s, d, st.bytes, st.chunks, st.held, st.connections]
                for (s, d), st in sorted(self.stats.items())]  # fmt: skip


class Control(threading.Thread):
    """The control socket and telemetry, in a thread of their own: zmq sockets stay in the
    thread that made them; table changes go to the event loop thread-safely."""

    def __init__(self, proxy: Proxy, loop: asyncio.AbstractEventLoop, telemetry: str | None,
                 parent_pid: int | None, name: str) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.proxy, self.loop, self.parent_pid = proxy, loop, parent_pid
        self.telemetry_ep, self.name_ = telemetry, name
        self.running = True
        self.counters: dict[str, int] = {}

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        if cmd == "ping":
            return ok(pid=os.getpid())
        if cmd == "set_links":
            try:
                table = LinkTable.from_wire(req.get("links"))
            except ValueError as e:
                return error(str(e), "invalid_links")
            self.loop.call_soon_threadsafe(self.proxy.set_table, table)
            return ok(links=len(table))
        if cmd == "get_links":
            return ok(links=self.proxy.table.to_wire())
        if cmd == "stats":
            return ok(links=self.proxy.rows(), refused=self.proxy.refused,
                      upstream_errors=self.proxy.upstream_errors)  # fmt: skip
        return error(f"unknown command {cmd!r}", "unknown_command")

    def run(self) -> None:
        ctx = zmq.Context()
        auth.serve(ctx, auth.env_secret())  # the lab's endpoints only
        sock, endpoint = control_socket(ctx)
        tele = Telemetry(ctx, self.telemetry_ep, self.name_)
        tele.emit("node.ready", control=endpoint, pid=os.getpid())
        print(f"listening; control {endpoint}", flush=True)  # for its log, and tests
        last_rows: list[list[Any]] = []
        next_report = time.monotonic() + REPORT_EVERY
        while self.running:
            if sock.poll(100):
                serve_control(sock, self.handle, self.counters)
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + REPORT_EVERY
                rows = self.proxy.rows()
                if rows != last_rows:
                    last_rows = rows
                    tele.emit("proxy.links", links=rows, refused=self.proxy.refused,
                              upstream_errors=self.proxy.upstream_errors)  # fmt: skip
                if not parent_alive(self.parent_pid):
                    self.loop.call_soon_threadsafe(self.loop.stop)
                    break
        tele.close()
        sock.close(0)
        auth.destroy(ctx)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="faults.tcpproxy")
    p.add_argument("--spec", required=True, help="listeners and sources, as JSON")
    p.add_argument("--name", default="peerproxy")
    p.add_argument("--telemetry", default=None)
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent(args.parent_pid)
    proxy = Proxy(json.loads(args.spec), args.seed)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        servers = loop.run_until_complete(proxy.serve())
    except OSError as e:
        print(f"error: the TCP fault proxy cannot listen: {e}", flush=True)
        sys.exit(3)
    control = Control(proxy, loop, args.telemetry, args.parent_pid, args.name)
    control.start()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    try:
        loop.run_forever()
    finally:
        control.running = False
        for s in servers:
            s.close()
        control.join(timeout=1.0)


if __name__ == "__main__":
    main()
