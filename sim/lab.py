"""A whole lab in virtual time: replicas, broker, workload clients and a fault schedule.

`SimLab(plan, sink).run()` does what `labctl up` + `scenario run` do with real processes:
boots the replicas (r0..), starts the workload at time 0 (clients c0.., the plan's rate
split between them, each its own seeded stream, as the supervisor spawns them), fires the
plan's fault steps at their times, lets clients finish what is in flight for up to 3 s
after the end, then stops them. Every record goes to the sink in the supervisor's format:
node events (`{"t", "src", "kind", ...}`, leases with `expiry_true`), one "applied" event
per command, `broker.write`, `fault` / `fault.healed` / `process.exit`, and history
entries. `t` is true virtual time in seconds. Given a `TraceWriter` (faults/trace.py), it
also writes the message trace the fault router writes in the lab: every message with its
send time, its wait until delivery, its fate and its wire bytes' size and head (the
message encoded as the lab's wire encodes it, so `describe` reads type and term offline
exactly as for a real run).

What runs costs time, modelled simply (`CPU`): a batch takes a fixed service time of the
node, and a batch that persists one fsync more (plus the disk fault's latency and stall);
messages take a uniform latency per hop. While a node is busy or paused its inputs wait
and are then drained as one batch, so load shows as batching as it does in the replica.
Fixed costs, not sampled: a sampled cost would add draws from the seeded stream for
nothing a checker can judge, and fixed ones keep shrinking stable.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

import protocols
from faults import trace as tr
from nodes.broker import Broker
from nodes.operations import Client
from nodes.state_machine import StateMachine, applied_row
from nodes.status_publish import IDLE_STATUS_INTERVAL, LATER, PUBLISH, STATUS_INTERVAL, decide
from nodes.wal import Corruption, WALCorrupt, encode_records, recover
from nodes.wire import RecordCodec
from protocols.base import (
    BrokerWrite,
    ClientReply,
    Committed,
    client_quorum,
    decode_options,
)
from protocols.base import events as ev
from protocols.simnet import SimNet, SimNode
from sim.faults import FaultsMixin

_FATES = {name: code for code, name in enumerate(tr.FATES)}  # the network's fates, coded
DRAIN_GRACE = 3.0  # as `scenario run`: clients may finish in-flight operations this long
LIN_CHECK_EVERY = 1.0  # virtual seconds between the sink's online checks


@dataclass(frozen=True)
class CPU:
    """The cost model. Defaults: about what a replica on one core of a laptop spends."""

    latency: tuple[float, float] = (0.0003, 0.0015)  # one hop through the router, seconds
    service_time: float = 0.0001  # one batch (decode, protocol, encode)
    fsync_time: float = 0.001  # one fsync of a batch that persists


@dataclass
class Plan:
    """What to run: a scenario's contents as plain data (labctl/simrun.py builds it)."""

    protocol: str
    nodes: int = 3
    seed: int = 42
    duration: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)
    fencing: bool = False
    workload: dict[str, Any] | None = None
    steps: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (at, fault)
    mutate: str = ""  # the lab's named mutation (labctl/mutants.py); a protocol's is in options
    mutate_target: str = ""  # protocol, broker or workload: who carries it


class Sink(Protocol):
    """Where a simulated run's records go (the supervisor's event and history streams)."""

    def event(self, rec: dict[str, Any]) -> None: ...

    def history(self, rec: dict[str, Any]) -> None: ...

    def check(self, t: float) -> None:
        """Time for the online checks that cost more than a record (linearizability)."""

    def say(self, text: str) -> None:
        """A line for the user: a fault step applied or not."""


class _Driver:
    """One workload client's open loop on the network's clock."""

    def __init__(self, client: Client, start: float, rate: float, duration: float) -> None:
        self.client = client
        self.interval = 1.0 / rate if rate > 0 else math.inf
        self.next_op = start
        self.end = start + duration
        self.wake: float | None = None
        self.running = True


class _StatusPublisher:
    """One replica process's status telemetry (nodes/status_publish.py's rule): what it
    published last and when, and the virtual time of its booked publishing turn."""

    __slots__ = ("booked", "last", "last_t")

    def __init__(self) -> None:
        self.last: dict[str, Any] | None = None
        self.last_t = -math.inf
        self.booked: float | None = None


class SimLab(FaultsMixin, SimNet):
    def __init__(self, plan: Plan, sink: Sink, cpu: CPU | None = None,
                 trace: tr.TraceWriter | None = None, status: bool = True) -> None:  # fmt: skip
        cpu = cpu or CPU()
        proto = protocols.get(plan.protocol)
        options = decode_options(proto.Options, dict(plan.options))
        super().__init__(
            proto, plan.nodes, options=options, seed=plan.seed, latency=cpu.latency,
            record=False, start=False, model=StateMachine, timed=True,
            service_time=cpu.service_time, fsync_time=cpu.fsync_time, checks=False,
        )  # fmt: skip
        self.plan = plan
        self.sink = sink
        self.read_seq = "index"  # as the replica answers reads
        self.broker = Broker(plan.fencing, plan.mutate if plan.mutate_target == "broker" else "")
        self.client_quorum = client_quorum(proto, plan.nodes)
        self.drivers: dict[str, _Driver] = {}
        self.elections = 0
        self.leaders_by_term: dict[int, list[str]] = {}
        self.ops = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        self.records = RecordCodec(proto.records)
        # A node's log as bytes, where a disk fault damaged it: what its next start reads
        # back (a node that refused to start on it keeps it, as the file stays).
        self.wal_images: dict[str, bytes] = {}
        self.init_faults(random.Random(f"{plan.seed}:supervisor"))
        # node.status telemetry, as replicas publish it (a run with no record, explore's,
        # has no use for it). It reads the nodes and draws nothing: on or off, the run is
        # the same.
        self.status_on = status
        self.publishers: dict[str, _StatusPublisher] = {}
        self.trace = trace
        if trace is not None:
            self._wire = msgspec.msgpack.Encoder()  # the lab's wire (nodes/wire.py's Codec)
            self.tracer = self._traced

    def _traced(self, sent: float, wait: float | None, src: str, dst: str, fate: str,
                msg: msgspec.Struct) -> None:  # fmt: skip
        """One message's record in the trace, as the router records it (faults/trace.py's
        TraceWriter packs it and writes chunks as the buffer fills)."""
        w = self.trace
        assert w is not None
        if w.full:  # past the cap only the count is kept: skip the encoding
            w.add(sent, wait, 0, _FATES[fate], 0)
        else:
            payload = self._wire.encode(msg)
            w.add(sent, wait, w.link(src, dst), _FATES[fate], len(payload),
                  payload[: tr.HEAD_BYTES])  # fmt: skip

    # -- running -----------------------------------------------------------------------

    def run(self) -> None:
        """The whole run: boot, workload and steps, the end, the drain, the stop."""
        for i in self.ids:
            self._boot(self.nodes[i])
        self.emit("lab.ready", nodes=list(self.ids), protocol=self.plan.protocol)
        if self.plan.workload:
            self.at(0.0, lambda: self.start_workload(self.plan.workload or {}))
        for i, (at, spec) in enumerate(self.plan.steps):
            self.at(at, lambda i=i, spec=spec: self.fire_step(i, spec))
        self.at(LIN_CHECK_EVERY, self._online_check)
        self.run_for(self.plan.duration)
        self.run_until(lambda: not any(d.running for d in self.drivers.values()), DRAIN_GRACE)
        for name, d in self.drivers.items():
            if d.running:
                self._client_done(name, stopped=True)

    def _online_check(self) -> None:
        self.sink.check(self.now)
        self.at(self.now + LIN_CHECK_EVERY, self._online_check)

    def emit(self, kind: str, **data: Any) -> None:
        """An event of the lab's own (faults, process exits), as the supervisor's."""
        self.sink.event({"t": self.now, "src": "supervisor", "kind": kind, **data})

    # -- what replicas do -----------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        starts, corruption = self._recover(node)
        if not starts:
            return  # refused to start: the process exited, the node stays down
        self.sink.event({"t": self.now, "src": node.id, "kind": "node.starting"})
        if node.damaged:
            detail = corruption.describe() if corruption else "not repaired yet"
            self.sink.event({"t": self.now, "src": node.id, "kind": ev.WAL_CORRUPT,
                             "detail": detail, "repairing": True})  # fmt: skip
        self.sink.event({"t": self.now, "src": node.id, "kind": "node.ready",
                         "recovered": len(node.disk)})  # fmt: skip
        if self.status_on:
            self.publishers[node.id] = _StatusPublisher()  # a new process publishes anew
            node.status_touched = False  # its first batch books a turn
        super()._boot(node)

    def wal_image(self, node: str) -> bytes:
        """The bytes of `node`'s log, as its replica's WAL would hold them."""
        image = self.wal_images.get(node)
        if image is None:
            image = encode_records([self.records.encode(r) for r in self.nodes[node].disk])
        return image

    def _recover(self, node: SimNode) -> tuple[bool, Corruption | None]:
        """A replica's WAL recovery (nodes/wal.py's `recover`, the decision it makes on
        the file) on a damaged log: the node's disk becomes what comes back, damaged with
        the records after the corrupt one when its protocol repairs from its peers.
        Whether the node starts (one that refuses says so and exits 2), and the
        corruption found at this start."""
        image = self.wal_images.get(node.id)
        if image is None:
            return True, None  # its records, as it wrote them
        path = Path("data") / node.id / "wal.log"
        try:
            found = recover(image, path, repair=self.protocol.repairs_corruption)
        except WALCorrupt as e:
            self.sink.event({"t": self.now, "src": node.id, "kind": ev.WAL_CORRUPT,
                             "detail": str(e), "repairing": False})  # fmt: skip
            self.emit("process.exit", node=node.id, code=2)
            return False, None
        del self.wal_images[node.id]
        node.disk = self.records.decode_log(found.payloads)[0]
        if found.corruption is not None:
            node.damaged = True
            node.damaged_tail = tuple(self.records.decode_log(found.tail)[0])
        return True, found.corruption

    def _record_event(self, node: SimNode, kind: str, data: dict[str, Any]) -> None:
        rec = {"t": self.now, "src": node.id, "kind": kind, **data}
        if kind == ev.LEASE and data.get("expiry") is not None:
            rec["expiry_true"] = node.clock.to_true(data["expiry"])
        elif kind == ev.BECAME_LEADER:
            self.elections += 1
            term = data.get("term")
            if isinstance(term, int):
                holders = self.leaders_by_term.setdefault(term, [])
                if node.id not in holders:
                    holders.append(node.id)
        self.sink.event(rec)

    def _applied(self, node: SimNode, c: Committed, result: Any) -> None:
        row = applied_row(c.index, c.term, c.command, result, c.view)
        rec = {"t": self.now, "src": node.id, "kind": ev.APPLIED}
        rec.update(zip(ev.APPLIED_ROW, row))  # noqa: B905 - view is optional
        self.sink.event(rec)

    def _restored(self, node: SimNode, before: int) -> None:
        for entry in node.model.covered_since(before):
            self.sink.event({"t": self.now, "src": node.id, "kind": ev.APPLIED, **entry})

    def _arrive_at_endpoint(self, src: str, dst: str, msg: msgspec.Struct) -> None:
        if isinstance(msg, ClientReply):
            d = self.drivers.get(dst)
            if d is not None and d.running:
                d.client.on_reply(self.now, msg)
                self._client_wake(dst)
        elif isinstance(msg, BrokerWrite) and dst == "broker":
            accepted = self.broker.decide(msg)
            self.sink.event({"t": self.now, "src": "broker", "kind": "broker.write",
                             "from": src, "token": msg.token, "node": msg.node, "seq": msg.seq,
                             "request_id": msg.request_id, "accepted": accepted,
                             "order_id": msg.order.order_id if msg.order else None,
                             "highest": self.broker.highest})  # fmt: skip

    # -- status telemetry -------------------------------------------------------------------

    def _touched(self, node: SimNode) -> None:
        # As the replica after each batch: any input may move what status shows.
        self.status_touched(node.id)

    def status_touched(self, node: str) -> None:
        """Something `node`'s status shows may have moved (a batch, a fault it carries
        out): book its publishing turn, STATUS_INTERVAL after the last status at the
        earliest, unless one is booked by then."""
        pub = self.publishers.get(node)
        if pub is None:
            return
        t = max(self.now, pub.last_t + STATUS_INTERVAL)
        if pub.booked is not None and pub.booked <= t:
            return
        pub.booked = t
        self.at(t, lambda: self._publish_status(node, pub, t))

    def _publish_status(self, node: str, pub: _StatusPublisher, booked: float) -> None:
        if pub.booked != booked or self.publishers.get(node) is not pub:
            return  # superseded by an earlier turn, or the process is gone since
        pub.booked = None
        n = self.nodes[node]
        n.status_touched = False  # from now on, its next batch books the next turn
        if n.protocol is None:
            return
        if n.paused_until > self.now:
            return  # stopped: it says nothing; its first batch once resumed books a turn
        s = self.node_status(node)
        verdict = decide(s, pub.last, self.now - pub.last_t)
        if verdict == LATER:  # only volatile fields moved: say it when the idle wait is over
            t = pub.last_t + IDLE_STATUS_INTERVAL
            pub.booked = t
            self.at(t, lambda: self._publish_status(node, pub, t))
        if verdict != PUBLISH:
            return
        pub.last, pub.last_t = s, self.now
        self.sink.event({"t": self.now, "src": node, "kind": "node.status", **s})

    def node_status(self, node: str) -> dict[str, Any]:
        """What the replica's status telemetry says (its protocol's status and more)."""
        n = self.nodes[node]
        if n.protocol is None:
            return {"role": "down"}
        s = dict(n.protocol.status())
        s["applied_index"] = n.model.applied_index
        expiry = s.get("lease_expiry")
        s["lease_expiry_true"] = n.clock.to_true(expiry) if expiry is not None else None
        s["clock_offset"] = n.clock.offset
        s["clock_drift"] = n.clock.drift
        s["fsync_latency"] = n.fsync_latency
        s["byzantine"] = self.byzantine.get(node)
        return s

    # -- the workload ---------------------------------------------------------------------

    def start_workload(self, spec: dict[str, Any]) -> None:
        n = int(spec.get("clients", 1))
        rate = float(spec.get("rate", 10)) / n
        duration = float(spec.get("duration", self.plan.duration))
        for i in range(n):
            name = f"c{i}"
            client = Client(
                name=name, replicas=list(self.ids), kind=str(spec.get("kind", "kv")),
                target=str(spec.get("target", "leader")),
                reads=str(spec.get("reads", "log")).split(","), keys=int(spec.get("keys", 5)),
                timeout=float(spec.get("timeout", 0.25)), retries=int(spec.get("retries", 3)),
                max_inflight=16, rng=random.Random(f"{self.plan.seed}:{name}"), epoch="sim",
                quorum=self.client_quorum, broadcast=self.protocol.byzantine_tolerant,
                mutate=self.plan.mutate if self.plan.mutate_target == "workload" else "",
            )  # fmt: skip
            client.transmit = lambda node, request, name=name: self._send(name, node, request)
            client.emit = lambda t, rec, name=name: self._history(name, t, rec)
            self.drivers[name] = _Driver(client, self.now, rate, duration)
            self._client_wake(name)
        self.emit(
            "workload.start",
            workload={k: spec.get(k) for k in ("kind", "rate", "clients", "target", "reads")},
        )

    def _history(self, name: str, t: float, rec: dict[str, Any]) -> None:
        kind = rec.get("type")
        if kind in self.ops:
            self.ops[kind] += 1
        self.sink.history({"t": t, "process": name, **rec})

    def _client_wake(self, name: str) -> None:
        """Schedule the client's next turn: its next slot or timer, whichever is first."""
        d = self.drivers[name]
        if not d.running:
            return
        wake = d.client.next_timer()
        if d.next_op < d.end:
            wake = d.next_op if wake is None else min(wake, d.next_op)
        elif not d.client.inflight:
            self._client_done(name)
            return
        if wake is None or (d.wake is not None and self.now < d.wake <= wake):
            return  # nothing to wait for, or a turn at or before it is booked already
        d.wake = wake
        self.at(wake, lambda: self._client_turn(name, wake))

    def _client_turn(self, name: str, booked: float) -> None:
        d = self.drivers[name]
        if not d.running or d.wake != booked:
            return  # superseded by an earlier booking that ran already
        d.wake = None
        now = self.now
        while d.next_op < d.end and d.next_op <= now:
            d.next_op += d.interval
            d.client.start_op(now)
        d.client.on_timers(now)
        self._client_wake(name)

    def _client_done(self, name: str, stopped: bool = False) -> None:
        d = self.drivers[name]
        d.running = False
        c = d.client
        if stopped:
            c.stop(self.now)
        self.sink.event({"t": self.now, "src": name, "kind": "workload.done", "ops": c.sent_ops,
                         "skipped": c.skipped, "retries": c.retries_used,
                         "open": len(c.inflight)})  # fmt: skip
        self.emit("process.exit", node=name, code=0)

    # -- the end ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The lab's own summary (the supervisor's summary.json, before the verdict)."""
        return {
            "protocol": self.plan.protocol,
            "nodes": len(self.ids),
            "seed": self.plan.seed,
            "duration": round(self.now, 6),
            "elections": self.elections,
            "leaders_by_term": {str(t): sorted(n) for t, n in sorted(self.leaders_by_term.items())},
            "final": {r: self.node_status(r) for r in self.ids},
            "faults_applied": self.faults_applied,
            "ops": self.ops,
            "network": {"dropped": self.dropped, "messages": sum(self.counts.values())},
        }
