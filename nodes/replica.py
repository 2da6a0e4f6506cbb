"""The replica process: one protocol object wrapped with sockets, clock, WAL and state machine.

    python -m nodes.replica --id r0 --replicas r0,r1,r2 --protocol naive ...

The loop gathers inputs (peer messages, client requests, the deadline tick), hands them to
the protocol, and carries out each `Ready` batch in the contract's order: persist with one
fsync, then send, then apply (and answer clients), then publish events. Inputs that arrive
together are folded into one batch so one fsync covers them all.

Bad bytes on the wire are counted and dropped; the process never dies of its input.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import zmq

import protocols
from faults.model import FaultError, parse_fault
from nodes import auth
from nodes.clock import NodeClock
from nodes.inbound import Drops
from nodes.nodeproc import node_arguments, serve
from nodes.process import (
    Telemetry,
    control_socket,
    data_endpoint,
    error,
    hello,
    log,
    ok,
    parent_alive,
    serve_control,
)
from nodes.process import true_now as true_time
from nodes.state_machine import StateMachine, applied_row
from nodes.status_publish import LATER, PUBLISH, STATUS_INTERVAL, decide
from nodes.wal import WAL, WALCorrupt
from nodes.wire import Codec, RecordCodec, WireError
from protocols.base import (
    BrokerAck,
    ClientReply,
    ClientRequest,
    ConfigError,
    NodeConfig,
    ReadReady,
    Ready,
    SnapshotImage,
    decode_options,
)
from protocols.base import events as ev

_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq's flag enums cost on the hot path
MAX_DRAIN = 512
APPLIED_BATCH = ev.APPLIED + ".batch"  # messages folded into one batch (one fsync) at most
PARENT_CHECK = 0.2
# The cyclic garbage collector's full collections walk every live object: a replica's
# history (EPaxos's instance space grows with every command) makes each one a pause of
# 30-150 ms at 40k-200k instances, long enough for peers to start recovering this
# replica's instances. Every FREEZE_INTERVAL what has survived so far moves to the
# permanent generation, which collections skip. Those objects are still freed by reference
# counting when dropped; only garbage reference cycles among them are never collected:
# protocol state is trees of records (log entries, instances, sessions), and the few cycles
# (a protocol object and its helpers) live as long as the process.
FREEZE_INTERVAL = 1.0
# Events the node's log (runs/<run>/logs/<id>.log) leaves out: the lease is renewed on
# every heartbeat round, and the telemetry has it anyway.
UNLOGGED = frozenset({ev.LEASE, ev.COMMITTED})


class Replica:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.id
        self.parent_pid: int | None = args.parent_pid
        self.ctx = zmq.Context()
        secret = auth.env_secret()
        self.zap = auth.serve(self.ctx, secret)
        self.telemetry = Telemetry(self.ctx, args.telemetry, self.id)
        self.clock = NodeClock()
        proto_cls = protocols.get(args.protocol)
        raw_options = json.loads(args.options or "{}")
        if secret is not None and "key" in proto_cls.Options.__struct_fields__:
            # A signing key (PBFT) the options did not set comes from the lab's secret,
            # not from a constant every lab shares (and never from a command line).
            raw_options.setdefault("key", auth.derive(secret, "protocol-key"))
        options = decode_options(proto_cls.Options, raw_options)
        replicas = tuple(args.replicas.split(","))
        # Each replica's randomness is seeded from the lab seed and its id: runs repeat.
        rng = random.Random(f"{args.seed}:{self.id}")
        self.records = RecordCodec(proto_cls.records)
        # sent: frames; peer_messages: protocol messages to peers (a bundle holds several)
        self.counters: dict[str, int] = {
            "malformed": 0,
            "sent": 0,
            "send_dropped": 0,
            "peer_messages": 0,
        }
        # The WAL first: a protocol that repairs corruption is told it starts damaged; any
        # other refuses to start (WALCorrupt, reported by main()).
        repairs = proto_cls.repairs_corruption
        self.wal, payloads = WAL.open(
            Path(args.data_dir) / "wal.log", fsync=not args.no_fsync, repair=repairs
        )
        self.protocol = proto_cls(
            NodeConfig(self.id, replicas, options, rng, check_image=StateMachine.check_image,
                       damaged=self.wal.damaged,
                       damaged_tail=tuple(self._decode_records(self.wal.tail)))
        )  # fmt: skip
        self.peers = frozenset(r for r in replicas if r != self.id)
        self.codec = Codec(proto_cls.messages)
        self.sm = StateMachine(exactly_once=proto_cls.exactly_once)
        self.recovered = self._decode_records(payloads)

        self.data = data_endpoint(self.ctx, args.router, self.id)
        self.control, self.control_endpoint = control_socket(self.ctx)

        self.deadline: float | None = None  # node clock
        self.pending_reads: list[ReadReady] = []
        self.replies: dict[str, list[bytes]] = {}  # this batch's answers, per client
        self.drops = Drops(self.id)  # logs the first of each kind of bad input, once
        self.running = True
        self.last_status: dict[str, Any] | None = None
        self.last_status_t = 0.0
        self.status_dirty = True
        self.byzantine: str | None = None  # the misbehaviour the lab told this node to show
        self.barrier: bool = args.barrier  # the lab's initial start: wait to be released

    def _decode_records(self, payloads: list[bytes]) -> list[msgspec.Struct]:
        records, left_out = self.records.decode_log(payloads)
        if left_out:
            self.counters["bad_records"] = self.counters.get("bad_records", 0) + 1
        return records

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        bad = self.counters.get("bad_records", 0)
        log(self.id, f"{self.protocol.name} replica of {','.join(self.protocol.config.replicas)}, "
            f"pid {os.getpid()}; WAL {self.wal.path}: {len(self.recovered)} records recovered"
            + (f", {self.wal.truncated_bytes} bytes of torn tail cut" if self.wal.truncated_bytes
               else "")
            + (f", {bad} undecodable record(s) left out" if bad else "")
            + (", damaged: repairing from its peers" if self.wal.damaged else ""))  # fmt: skip
        recovered = len(self.recovered)
        # Before anything the restart re-applies: what this node held before is gone from
        # its state machine (the lost-write checker counts only what it applies again).
        self.telemetry.emit("node.starting", pid=os.getpid())
        if self.wal.damaged:
            corruption = self.wal.corruption
            detail = corruption.describe() if corruption is not None else "not repaired yet"
            self.telemetry.emit(ev.WAL_CORRUPT, detail=detail, repairing=True)
        if self.barrier and not self._await_release():
            self.close(started=False)
            return
        self.execute(self.protocol.start(self.clock.now(), self.recovered))
        self.recovered = []
        # Ready once the recovered log has been replayed and applied: a node whose WAL it
        # cannot replay dies before it says ready, so `fault restart` reports it.
        self.telemetry.emit(
            "node.ready",
            pid=os.getpid(),
            control=self.control_endpoint,
            recovered=recovered,
            torn_bytes=self.wal.truncated_bytes,
        )
        poller = zmq.Poller()
        poller.register(self.data, zmq.POLLIN)
        poller.register(self.control, zmq.POLLIN)
        next_parent_check = true_time() + PARENT_CHECK
        gc.freeze()  # the recovered history
        next_freeze = true_time() + FREEZE_INTERVAL
        while self.running:
            now_true = true_time()
            wait = PARENT_CHECK
            if self.deadline is not None:
                wait = min(wait, self.clock.to_true(self.deadline) - now_true)
            events = dict(poller.poll(max(0, math.ceil(wait * 1000)))) if wait > 0 else {}
            batch = Ready()
            if self.data in events or wait <= 0:
                self._drain(batch)
            if self.deadline is not None and self.clock.now() >= self.deadline:
                self.deadline = None
                batch.merge(self.protocol.on_tick(self.clock.now()))
            if not batch.is_empty() or batch.next_deadline is not None:
                self.execute(batch)
            if self.control in events:
                serve_control(self.control, self.handle_control, self.counters)
            self._maybe_publish_status()
            if now_true >= next_freeze:  # the loop's clock reading is close enough
                gc.freeze()
                next_freeze = now_true + FREEZE_INTERVAL
            if true_time() >= next_parent_check:
                next_parent_check = true_time() + PARENT_CHECK
                hello(self.data)  # a restarted router learns where we are
                if not parent_alive(self.parent_pid):
                    break
        self.close()

    def _await_release(self) -> bool:
        """The lab's start barrier (labctl/supervisor.py `start`): loaded, WAL recovered,
        connected to the router, this node says so (node.loaded) and waits for the
        supervisor's "release", which every replica gets at once, before its protocol
        starts. Replicas finish importing up to 0.3 s apart on a busy machine: one whose
        election clock started before its peers' could promote itself before they ran.
        Peer messages that arrive meanwhile wait in the socket for the protocol. Only the
        control socket is served (ping, release, shutdown). False if told to stop, or the
        supervisor is gone, first."""
        self.telemetry.emit("node.loaded", pid=os.getpid(), control=self.control_endpoint)
        released: list[bool] = []

        def handle(request: dict[str, Any]) -> dict[str, Any]:
            cmd = request["cmd"]
            if cmd == "release":
                released.append(True)
                return ok()
            if cmd in ("ping", "shutdown"):
                return self.handle_control(request)
            return error(f"{cmd!r}: {self.id} waits for the lab's start", "not_started")

        while self.running and not released:
            if self.control.poll(int(PARENT_CHECK * 1000)):
                serve_control(self.control, handle, self.counters)
            elif not parent_alive(self.parent_pid):
                return False
        return self.running

    def _drain(self, batch: Ready) -> None:
        for _ in range(MAX_DRAIN):
            try:
                frames = self.data.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.counters["malformed"] += 1
                self.drops.drop("framing", f"{len(frames)} frames")
                continue
            src = frames[0].decode("utf-8", "replace")
            try:
                msgs, bad = self.codec.decode_all(frames[1])
            except WireError as e:
                self.counters["malformed"] += 1
                self.drops.drop("undecodable", f"from {src}: {e}")
                continue
            if bad:
                self.counters["malformed"] += bad
                self.drops.drop("undecodable_in_bundle", f"from {src}")
            now = self.clock.now()
            if len(msgs) > 1 and all(isinstance(m, ClientRequest) for m in msgs):
                # A client's bundle: the protocol may take it as one (Raft replicates it
                # in one AppendEntries per follower).
                batch.merge(self.protocol.on_clients(now, src, msgs))
                continue
            for msg in msgs:
                if isinstance(msg, ClientRequest):
                    batch.merge(self.protocol.on_client(now, src, msg))
                elif isinstance(msg, (BrokerAck, ClientReply)):
                    key = "broker_acks" if isinstance(msg, BrokerAck) else "stray_replies"
                    self.counters[key] = self.counters.get(key, 0) + 1
                else:
                    batch.merge(self.protocol.on_message(now, src, msg))

    def execute(self, ready: Ready) -> None:
        """Carry out one batch in the order of obligation."""
        while True:
            # 0. a leader's new entries go out while its own fsync runs (thesis 10.2.1).
            early = ready.compact is None
            if early:
                self._send_all(ready.parallel)
            # 1. persist, one fsync for the whole batch, before anything else leaves.
            if ready.compact is not None:
                self.wal.rewrite([self.records.encode(r) for r in ready.compact])
            if ready.persist:
                self.wal.append([self.records.encode(r) for r in ready.persist])
            # 2. messages to peers, clients and the broker.
            self._send_all(ready.messages if early else [*ready.parallel, *ready.messages])
            # 3. restore a peer's image, then apply, answering the clients this node
            # accepted requests from.
            restored = self._restore(ready.restore.data) if ready.restore is not None else []
            rows: list[list[Any]] = []  # fields: events.APPLIED_ROW
            for c in ready.committed:
                cmd = c.command
                result = self.sm.apply(c.index, c.term, cmd)
                rows.append(applied_row(c.index, c.term, cmd, result, c.view))
                if c.reply:
                    self._reply_committed(cmd.client, cmd.request_id, result)
            if rows or restored:
                # One message per batch, not per command: the supervisor expands it into
                # one "applied" event each (telemetry per entry cost more than the apply).
                self.telemetry.emit(APPLIED_BATCH, entries=restored, rows=rows)
            self.pending_reads.extend(ready.reads)
            if self.pending_reads:
                self._answer_reads()
            self._flush_replies()
            self._send_all(ready.after)
            # 3b. records the answers did not wait for (a decision durable elsewhere):
            # written, and made durable by the next batch's fsync, not one of their own.
            if ready.persist_after:
                self.wal.append([self.records.encode(r) for r in ready.persist_after], sync=False)
            # 4. events.
            for e in ready.events:
                if e.kind == ev.WAL_REPAIRED:
                    self.wal.repaired()
                data = dict(e.data)
                if e.kind not in UNLOGGED:
                    log(self.id, f"{e.kind} " + " ".join(f"{k}={v}" for k, v in data.items()))
                if e.kind == ev.LEASE and data.get("expiry") is not None:
                    data["expiry_true"] = self.clock.to_true(data["expiry"])
                self.telemetry.emit(e.kind, **data)
            # 5. the next deadline.
            if ready.next_deadline is not None:
                self.deadline = ready.next_deadline
            # Any input may move what status shows (a follower's commit index moves with a
            # heartbeat that carries no command); the publisher throttles and dedups.
            self.status_dirty = True
            if not ready.want_snapshot:
                return
            image = SnapshotImage(self.sm.applied_index, self.sm.applied_term, self.sm.snapshot())
            log(self.id, f"snapshot at index {image.index}: {len(image.data)} bytes")
            ready = self.protocol.on_snapshot(self.clock.now(), image)

    def _restore(self, data: bytes) -> list[dict[str, Any]]:
        """Replace the state machine with a snapshot image, and say what it now holds: each
        write the image covers (from its session table) becomes an "applied" event marked
        from_snapshot, so the checkers see this replica holding what it holds."""
        before = self.sm.applied_index
        self.sm.restore(data)
        log(self.id, f"restored a snapshot: applied {before} -> {self.sm.applied_index}")
        return self.sm.covered_since(before)

    def _send(self, dst: str, payload: bytes) -> None:
        try:
            self.data.send_multipart([dst.encode(), payload], _NOBLOCK)
            self.counters["sent"] += 1
        except zmq.Again:
            self.counters["send_dropped"] += 1  # the router is gone or swamped: a lost message

    def _send_all(self, pairs: list[tuple[str, msgspec.Struct]]) -> None:
        """Send, in order per destination; what goes to one peer leaves as one frame (a
        Bundle when several): under load a batch holds many messages per peer (a
        follower's acks, a leader's AppendEntries), and the router's cost is per frame."""
        bundles: dict[str, list[bytes]] = {}
        for dst, msg in pairs:
            if dst in self.peers:
                bundles.setdefault(dst, []).append(self.codec.encode(msg))
            else:
                self._send(dst, self.codec.encode(msg))  # clients, the broker: one by one
        for dst, payloads in bundles.items():
            self.counters["peer_messages"] += len(payloads)
            self._send(dst, self.codec.bundle(payloads))

    def _flush_replies(self) -> None:
        """The answers of this batch, one frame per client (a Bundle when several)."""
        for client, payloads in self.replies.items():
            self._send(client, self.codec.bundle(payloads))
        self.replies.clear()

    def _reply_committed(self, client: str, request_id: str, result: Any) -> None:
        status = "ok" if result.status == "ok" else "fail"
        msg = ClientReply(
            request_id=request_id,
            status=status,
            node=self.id,
            term=result.term,
            seq=result.index,
            value=result.value,
        )
        self.replies.setdefault(client, []).append(self.codec.encode(msg))

    def _answer_reads(self) -> None:
        waiting = []
        for r in self.pending_reads:
            if r.index > self.sm.applied_index:
                waiting.append(r)
                continue
            msg = ClientReply(
                request_id=r.request.command.request_id,
                status="ok",
                node=self.id,
                term=r.term,
                seq=r.index,
                value=self.sm.read(r.request.command.key),
            )
            self.replies.setdefault(r.client, []).append(self.codec.encode(msg))
        self.pending_reads = waiting

    # -- control and telemetry -----------------------------------------------------------

    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "ping":
            return ok(node=self.id)
        if cmd == "status":
            return ok(status=self.status())
        if cmd in ("clock", "disk"):
            # The values are checked by the fault vocabulary, as the CLI, scenarios and the
            # supervisor check them: anything it refuses could end this process later (a
            # sleep of 1e20 s at the next fsync), and would again after every restart.
            params = ("offset", "drift") if cmd == "clock" else ("fsync", "stall")
            spec = {k: request[k] for k in params if request.get(k) is not None}
            try:
                fault = parse_fault({"fault": cmd, "node": self.id, **spec})
            except FaultError as e:
                return error(str(e), "bad_fault")
        if cmd == "clock":
            self.clock.set(fault.offset, fault.drift)
            self.status_dirty = True
            log(self.id, f"fault: clock offset={self.clock.offset:+g}s drift={self.clock.drift:+g}")
            self.telemetry.emit("node.clock", offset=self.clock.offset, drift=self.clock.drift)
            return ok(offset=self.clock.offset, drift=self.clock.drift)
        if cmd == "disk":
            if fault.fsync is not None:
                self.wal.fsync_latency = fault.fsync
            if fault.stall is not None:
                self.wal.stall_until = true_time() + fault.stall
            self.status_dirty = True
            stall = f", stalled for {float(request['stall']):g}s" if request.get("stall") else ""
            log(self.id, f"fault: disk fsync +{self.wal.fsync_latency * 1000:g}ms{stall}")
            return ok(fsync=self.wal.fsync_latency, stall_until=self.wal.stall_until)
        if cmd == "byzantine":
            mode = request.get("mode")
            mode = None if mode in (None, "", "honest") else str(mode)
            try:
                ready = self.protocol.set_byzantine(self.clock.now(), mode)
            except ConfigError as e:
                return error(str(e), "bad_fault")
            self.byzantine = mode
            log(self.id, f"fault: byzantine mode {mode or 'honest'}")
            self.execute(ready)
            self.telemetry.emit("node.byzantine", mode=mode or "honest")
            return ok(mode=mode or "honest")
        if cmd == "shutdown":
            self.running = False
            return ok()
        return error(f"unknown command {cmd!r}", "unknown_command")

    def status(self) -> dict[str, Any]:
        s = dict(self.protocol.status())
        s["applied_index"] = self.sm.applied_index
        expiry = s.get("lease_expiry")
        s["lease_expiry_true"] = self.clock.to_true(expiry) if expiry is not None else None
        s["clock_offset"] = self.clock.offset
        s["clock_drift"] = self.clock.drift
        s["fsync_ms"] = round(self.wal.last_fsync_ms, 3)
        s["fsync_latency"] = self.wal.fsync_latency
        s["fsyncs"] = self.wal.fsyncs
        s["counters"] = dict(self.counters)
        s["byzantine"] = self.byzantine
        return s

    def _maybe_publish_status(self) -> None:
        if not self.status_dirty:
            return
        t = true_time()
        if t - self.last_status_t < STATUS_INTERVAL:
            return
        s = self.status()
        self.status_dirty = False
        verdict = decide(s, self.last_status, t - self.last_status_t)
        if verdict == LATER:
            self.status_dirty = True  # only counters moved: say it later
        if verdict != PUBLISH:
            return
        self.last_status = s
        self.last_status_t = t
        self.telemetry.emit("node.status", **s)

    def close(self, started: bool = True) -> None:
        if started:
            s = self.protocol.status()
            log(self.id, f"stopping: role={s.get('role')} term={s.get('term')} "
                f"applied={self.sm.applied_index} fsyncs={self.wal.fsyncs} "
                + " ".join(f"{k}={v}" for k, v in self.counters.items()))  # fmt: skip
        else:
            log(self.id, "stopping before the lab's start released it")
        self.wal.close()
        self.telemetry.close()
        self.data.close(0)
        self.control.close(0)
        self.ctx.term()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = node_arguments("nodes.replica")
    p.add_argument("--protocol", required=True)
    p.add_argument("--options", default="{}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-fsync", action="store_true", help="benchmarks only: skip fsync")
    p.add_argument("--barrier", action="store_true",
                   help="the lab's initial start: wait for the supervisor's release")
    return p.parse_args(argv)


def refuse_corrupt_wal(args: argparse.Namespace, e: BaseException) -> NoReturn:
    """Coming back without part of its log would make this node claim what it lost; the
    protocol cannot repair it from its peers, so it does not start."""
    ctx = zmq.Context()
    telemetry = Telemetry(ctx, args.telemetry, args.id)
    telemetry.emit(ev.WAL_CORRUPT, detail=str(e), repairing=False)
    telemetry.close()
    ctx.term()  # sends the event (the socket lingers up to 0.5 s)
    print(f"error: {args.id}: WAL corrupt, refusing to start: {e}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(2)  # the half-built replica's context is not worth closing


def main(argv: list[str] | None = None) -> None:
    serve(parse_args(sys.argv[1:] if argv is None else argv), Replica,
          ((WALCorrupt,), refuse_corrupt_wal))  # fmt: skip


if __name__ == "__main__":
    main()
