"""One etcd member of the lab: the real `etcd` in its own network namespace, and this
process beside it as the lab's replica r<i>.

    python -m nodes.etcd.member --id r0 --replicas r0,r1,r2 --etcd /usr/bin/etcd \
        --netns labctl-P-r0 --ns-ip 10.213.1.2 --peer-urls JSON --data-dir D ...

It starts etcd first (`ip netns exec NS etcd ...`, in this process's group, so pause and
kill of the group reach it, with PR_SET_PDEATHSIG; output to logs/<id>.etcd.log; its data
dir is the run's data/<id>/etcd, so a restart comes back on etcd's own WAL). etcd listens
for peers on its namespace's address and advertises the proxy's address for its name, so
every peer connection crosses the TCP fault proxy (faults/tcpproxy.py).

Then it joins the fault router as r<i> (a DEALER like every replica): client requests of
the lab's one client path (nodes/client.py: the workload, `labctl client`, the dashboard)
reach it through the router's faults and become calls to its member's HTTP/JSON gateway
(gateway.py), on a pool of threads so a call that hangs under a partition holds up no
other; the answers go back as ClientReply. A put or cas whose outcome is unknown (etcd
timed out, the connection broke) gets no answer: the client records it as info, as for a
built-in replica that never answered. Reads: "log" and "quorum" are linearizable (etcd's
ReadIndex), "lease" is etcd's serializable read (the member's own state, possibly stale:
etcd 3.4 has no leader-lease read in its API, and this is the read without a quorum round).

Orders (op "order", the `orders` workload): this process is also the seed's order router,
contending for a lease lock in etcd (lockrouter.py). The holder records each order in
etcd (/orders/<order id>, whose revision is the seq) and sends it to the broker as a
BrokerWrite carrying the lock's revision as its fencing token, as a built-in leader sends
its term; a router that does not hold the lock answers not_leader naming the holder.

A thread polls the member's raft status at 10 Hz (etcd's raft.status expvar on
/debug/vars: its own term and state; /v3/maintenance/status reports the term of the last
applied entry, which lags a new leader's) and reports node.status as the built-ins do
(role leader / follower / candidate, term, leader, commit and applied index), with
became_leader / stepped_down events, so
`labctl status`, the dashboard and the split-brain checker read etcd like any replica.
node.ready comes when etcd listens on its client port (before it has a quorum: a member
restarted inside a partition is up, just not serving).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq

from nodes import auth
from nodes.etcd.gateway import Gateway, GatewayError
from nodes.etcd.lockrouter import LockRouter
from nodes.external.program import clock_problem, die_with_this_process, stderr_tail
from nodes.nodeproc import node_arguments, refuse_with, serve
from nodes.process import (
    Telemetry,
    control_socket,
    data_endpoint,
    error,
    hello,
    ok,
    parent_alive,
    serve_control,
    true_now,
)
from nodes.wire import Codec, WireError
from protocols.base import BrokerAck, BrokerWrite, ClientReply, ClientRequest
from protocols.base import events as ev
from protocols.base.effects import AppliedOrders

CLIENT_PORT = 2379
PEER_PORT = 2380
STATUS_INTERVAL = 0.1  # 10 Hz
READY_TIMEOUT = 20.0
WORKERS = 64  # a call waits on etcd (a quorum round, an fsync): many in flight
MAX_QUEUED = 2000  # requests waiting for a worker; more are not answered (clients time out)
# etcd's raft states as the lab's roles (a pre-candidate asks before it campaigns).
ROLES = {"StateLeader": "leader", "StateFollower": "follower", "StateCandidate": "candidate",
         "StatePreCandidate": "candidate"}  # fmt: skip


def etcd_argv(args: argparse.Namespace) -> list[str]:
    peers: dict[str, str] = json.loads(args.peer_urls)
    data = Path(args.data_dir) / "etcd"
    return [
        "ip", "netns", "exec", args.netns, args.etcd,
        "--name", args.id, "--data-dir", str(data),
        "--listen-peer-urls", f"http://{args.ns_ip}:{PEER_PORT}",
        "--initial-advertise-peer-urls", peers[args.id],
        "--listen-client-urls", f"http://{args.ns_ip}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}",
        "--advertise-client-urls", f"http://{args.ns_ip}:{CLIENT_PORT}",
        "--initial-cluster", ",".join(f"{r}={u}" for r, u in peers.items()),
        "--initial-cluster-state", "new", "--initial-cluster-token", args.token,
        "--heartbeat-interval", str(args.heartbeat_ms), "--election-timeout", str(args.election_ms),
        "--logger", "zap", "--log-outputs", "stderr",
        *(["--pre-vote=true"] if args.pre_vote else []),  # etcd 3.4's default: false
    ]  # fmt: skip


class Member:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.id
        self.ns_ip: str = args.ns_ip
        self.parent_pid: int | None = args.parent_pid
        self.etcd_bin: str = args.etcd
        self.log_path = Path(args.logs) / f"{self.id}.etcd.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        (Path(args.data_dir)).mkdir(parents=True, exist_ok=True)
        # etcd first: the pre-exec hook must run before zmq starts its threads.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                etcd_argv(args), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                close_fds=True, preexec_fn=die_with_this_process,
            )  # fmt: skip
        self.ctx = zmq.Context()
        auth.serve(self.ctx, auth.env_secret())  # the lab's endpoints only
        self.telemetry_ep: str | None = args.telemetry
        self.telemetry = Telemetry(self.ctx, args.telemetry, self.id)
        self.data = data_endpoint(self.ctx, args.router, self.id)
        self.control, self.control_endpoint = control_socket(self.ctx)
        self.replies = self.ctx.socket(zmq.PULL)
        self.replies_ep = f"inproc://replies-{id(self)}"
        self.replies.bind(self.replies_ep)
        self.codec = Codec()
        index = args.replicas.split(",").index(self.id)
        self.router = LockRouter(self.id, index, self.ns_ip, CLIENT_PORT, args.lock_ttl,
                                 self.telemetry_emitter())  # fmt: skip
        self.sent_orders = AppliedOrders()  # a retry to this router is not a second buy
        self.orders_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="gw")
        self.local = threading.local()
        self.queued = 0
        self.counters: dict[str, int] = {"requests": 0, "answered": 0, "unknown": 0,
                                         "failed": 0, "malformed": 0, "overload": 0,
                                         "broker_writes": 0, "broker_acks": 0}  # fmt: skip
        self.listening = threading.Event()
        self.running = True
        self.exit_code = 0
        self.last_error: str | None = None

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        try:
            return self.loop()
        finally:
            self.close()

    def loop(self) -> int:
        threading.Thread(target=self.poll_status, daemon=True).start()
        threading.Thread(target=self.router.run, daemon=True).start()
        poller = zmq.Poller()
        for s in (self.data, self.control, self.replies):
            poller.register(s, zmq.POLLIN)
        ready = False
        deadline = true_now() + READY_TIMEOUT
        next_check = next_hello = 0.0
        while self.running:
            events = dict(poller.poll(100))
            if self.data in events:
                self.drain_router()
            if self.replies in events:
                self.send_replies()
            if self.control in events:
                serve_control(self.control, self.handle_control, self.counters)
            now = true_now()
            if not ready and self.listening.is_set():
                ready = True
                self.telemetry.emit("node.ready", pid=os.getpid(), control=self.control_endpoint,
                                    etcd_pid=self.proc.pid)  # fmt: skip
            if not ready and now > deadline:
                return self.fail(f"etcd did not listen on {self.ns_ip}:{CLIENT_PORT} within "
                                 f"{READY_TIMEOUT:g}s")  # fmt: skip
            if now >= next_hello:
                next_hello = now + 1.0
                hello(self.data)  # a restarted router learns where r<i> lives
            if now >= next_check:
                next_check = now + 0.2
                if not parent_alive(self.parent_pid):
                    break
                if self.proc.poll() is not None:
                    return self.fail(f"etcd exited with code {self.proc.returncode}")
        return self.exit_code

    def fail(self, what: str) -> int:
        tail = " | ".join(stderr_tail(self.log_path, lines=3))
        # One line, and the last: the supervisor quotes a dead child's last log line.
        print(f"error: {self.id}: {what}; {self.log_path} ends: {tail}", flush=True)
        self.running = False
        self.exit_code = 3
        return 3

    # -- clients -------------------------------------------------------------------------

    def drain_router(self) -> None:
        for _ in range(1000):
            try:
                frames = self.data.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.counters["malformed"] += 1
                continue
            src, raw = frames
            try:
                msgs, bad = self.codec.decode_all(raw)
            except WireError:
                self.counters["malformed"] += 1
                continue
            self.counters["malformed"] += bad
            for msg in msgs:
                if isinstance(msg, BrokerAck):
                    self.counters["broker_acks"] += 1  # the broker's answer to an order
                    continue
                if not isinstance(msg, ClientRequest):
                    self.counters["malformed"] += 1
                    continue
                self.counters["requests"] += 1
                if self.queued >= MAX_QUEUED:
                    self.counters["overload"] += 1
                    continue
                self.queued += 1
                self.pool.submit(self.serve_request, src, msg)

    def serve_request(self, src: bytes, req: ClientRequest) -> None:
        """On a worker thread: one gateway call, its reply to the main thread."""
        local = self.local
        if not hasattr(local, "gw"):
            local.gw = Gateway(self.ns_ip, CLIENT_PORT)
            local.push = self.ctx.socket(zmq.PUSH)
            local.push.connect(self.replies_ep)
        side: list[bytes] = []
        reply = self.execute(local.gw, req, side)
        local.push.send_multipart([src, self.codec.encode(reply) if reply else b"", *side])

    def telemetry_emitter(self) -> Any:
        """emit() for the lock thread: its own telemetry socket (zmq sockets are not
        thread-safe), made on first use on that thread."""
        holder: dict[str, Telemetry] = {}

        def emit(kind: str, **fields: Any) -> None:
            if "t" not in holder:
                holder["t"] = Telemetry(self.ctx, self.telemetry_ep, self.id)
            holder["t"].emit(kind, **fields)

        return emit

    def execute(self, gw: Gateway, req: ClientRequest, side: list[bytes]) -> ClientReply | None:
        c = req.command

        def answer(status: str, doc: dict[str, Any] | None = None, **kw: Any) -> ClientReply:
            head = (doc or {}).get("header") or {}
            term = int(head["raft_term"]) if head.get("raft_term") else None
            seq = int(head["revision"]) if head.get("revision") else None
            return ClientReply(c.request_id, status, self.id, term=term, seq=seq, **kw)

        try:
            if c.op == "put":
                return answer("ok", gw.put(c.key, c.value or ""))
            if c.op == "get":
                value, doc = gw.get(c.key, serializable=req.read_mode == "lease")
                return answer("ok", doc, value=value)
            if c.op == "cas":
                done, found, doc = gw.cas(c.key, c.expected, c.value or "")
                return answer("ok" if done else "fail", doc, value=found)
            if c.op == "order":
                return self.route_order(gw, req, answer, side)
            return answer("fail", error=f"etcd members take put, get, cas and order, not {c.op!r}")
        except GatewayError as e:
            self.last_error = str(e)[:300]
            if e.definite or c.op == "get":  # a read changes nothing: failing it is safe
                return answer("fail", error=str(e)[:300])
            return None  # the write may have happened: no answer, the client records info

    def route_order(self, gw: Gateway, req: ClientRequest, answer: Any,
                    side: list[bytes]) -> ClientReply:  # fmt: skip
        """The order router: only the lock holder (as it believes) takes an order; it
        records it in etcd, then sends it to the broker with the lock's revision."""
        c = req.command
        token, holder = self.router.token()
        if token is None:
            return ClientReply(c.request_id, "not_leader", self.id,
                               leader=holder if holder != self.id else None)  # fmt: skip
        order_id = c.order.order_id if c.order is not None else c.request_id
        doc = gw.put(f"/orders/{order_id}", c.value or "")
        reply = answer("ok", doc)
        with self.orders_lock:
            first = self.sent_orders.first(c.request_id)
        if first:  # a retry of a request this router already sent gets its answer only
            side.append(self.codec.encode(BrokerWrite(token=token, node=self.id,
                                                      seq=reply.seq or 0,
                                                      request_id=c.request_id,
                                                      order=c.order)))  # fmt: skip
        return reply

    def send_replies(self) -> None:
        while True:
            try:
                src, payload, *side = self.replies.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.queued -= 1
            for write in side:  # the side effect first, as a built-in leader sends it
                try:
                    self.data.send_multipart([b"broker", write], zmq.NOBLOCK)
                    self.counters["broker_writes"] += 1
                except zmq.ZMQError:
                    self.counters["failed"] += 1
            if not payload:
                self.counters["unknown"] += 1
                continue
            self.counters["answered"] += 1
            try:
                self.data.send_multipart([src, payload], zmq.NOBLOCK)
            except zmq.ZMQError:
                self.counters["failed"] += 1

    # -- status --------------------------------------------------------------------------

    def poll_status(self) -> None:
        """The status thread: wait for etcd's client port, then poll status at 10 Hz."""
        ctx = self.ctx
        tele = Telemetry(ctx, self.telemetry_ep, self.id)
        while self.running and not self.listening.is_set():
            try:
                with socket.create_connection((self.ns_ip, CLIENT_PORT), timeout=0.5):
                    self.listening.set()
            except OSError:
                time.sleep(0.05)  # etcd is starting; nothing to wake on
        gw = Gateway(self.ns_ip, CLIENT_PORT, timeout=1.0)
        names: dict[str, str] = {}
        role: str | None = None
        term: int | None = None
        last: dict[str, Any] | None = None
        time.sleep(0.1)  # node.ready goes first (the main loop sends it)
        while self.running:
            t0 = time.monotonic()
            s: dict[str, Any]
            try:
                raft = gw.raft_status()
                me, lead = str(raft.get("id")), str(raft.get("lead", "0"))
                lead_id = str(int(lead, 16)) if lead != "0" else "0"
                if lead_id not in names and lead_id != "0":
                    names.update(gw.members())
                new_term = int(raft.get("term") or 0)
                new_role = ROLES.get(str(raft.get("raftState")), "candidate")
                s = {"role": new_role, "term": new_term, "leader": names.get(lead_id),
                     "commit_index": int(raft.get("commit") or 0),
                     "applied_index": int(raft.get("applied") or 0), "member_id": me,
                     "raft_state": raft.get("raftState"), "etcd": "serving"}  # fmt: skip
                if new_role == "leader" and (role != "leader" or new_term != term):
                    tele.emit(ev.BECAME_LEADER, term=new_term, how="elected")
                elif role == "leader" and new_role != "leader":
                    tele.emit(ev.STEPPED_DOWN, term=new_term, reason="etcd status")
                role, term = new_role, new_term
            except (GatewayError, ValueError, TypeError) as e:
                # Not serving (no quorum since it started, or overloaded): what it is.
                s = {"role": None, "term": term, "leader": None, "etcd": f"no status: {e}"[:200]}
                if role == "leader":
                    tele.emit(ev.STEPPED_DOWN, term=term, reason="no status")
                role = None
            s.update(self.router.snapshot())
            s.update(etcd_pid=self.proc.pid, counters=dict(self.counters),
                     last_error=self.last_error)  # fmt: skip
            if s != last:
                last = s
                tele.emit("node.status", **s)
            time.sleep(max(0.0, STATUS_INTERVAL - (time.monotonic() - t0)))
        tele.close()

    # -- control -------------------------------------------------------------------------

    def handle_control(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        if cmd == "ping":
            return ok(node=self.id, etcd_pid=self.proc.pid)
        if cmd == "clock":
            why = clock_problem([self.etcd_bin]) or "the lab does not preload libfaketime into etcd"
            return error(f"clock faults do not apply to etcd member {self.id}: {why}",
                         "bad_fault")  # fmt: skip
        if cmd == "disk":
            return error(f"disk faults do not apply to etcd member {self.id}: etcd does its "
                         "own fsyncs, which the lab cannot slow down (not for etcd)",
                         "bad_fault")  # fmt: skip
        if cmd == "byzantine":
            return error(f"byzantine faults do not apply to etcd member {self.id}", "bad_fault")
        if cmd == "shutdown":
            self.running = False
            return ok()
        return error(f"unknown command {cmd!r}", "unknown_command")

    def close(self) -> None:
        self.running = False
        self.router.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.telemetry.close()
        auth.destroy(self.ctx)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = node_arguments("nodes.etcd.member")
    p.add_argument("--etcd", required=True, help="the etcd binary")
    p.add_argument("--netns", required=True)
    p.add_argument("--ns-ip", required=True)
    p.add_argument("--peer-urls", required=True, help="JSON: member -> advertised peer URL")
    p.add_argument("--token", default="labctl")
    p.add_argument("--heartbeat-ms", type=int, default=100)
    p.add_argument("--election-ms", type=int, default=1000)
    p.add_argument("--lock-ttl", type=int, default=2,
                   help="the order router's lease TTL in seconds (lockrouter.py)")  # fmt: skip
    p.add_argument("--pre-vote", action="store_true", help="etcd's --pre-vote")
    p.add_argument("--logs", required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    serve(parse_args(sys.argv[1:] if argv is None else argv), Member,
          refuse_with((OSError,), lambda args: f"cannot start etcd ({args.etcd})"))  # fmt: skip


if __name__ == "__main__":
    main()
