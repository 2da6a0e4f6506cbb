"""An in-memory, deterministic network for testing any protocol of the contract.

    net = SimNet(RaftProtocol, 5, seed=1)
    leader = net.wait_leader()
    rid = net.put(leader, "x", "1")
    net.run_until(lambda: net.reply_for(rid) is not None, max_time=1.0)
    net.check()                    # election safety and state machine safety held

Everything runs on a virtual clock, with one seeded `random.Random` owned by the network
(each node's protocol gets its own, drawn from it), so a seed replays a run exactly.
Messages travel with a random latency and can be dropped, cut (both ways or one way),
lost at random, duplicated or reordered. Nodes can crash and restart: a restart builds a
fresh protocol object from the records it had persisted, as the replica runtime does from
its WAL. Each `Ready` is carried out in the contract's order (persist, then messages, then
apply and answer, then events, then the next deadline), so whatever a message relied on
was on "disk" before it left; `crash(n, mid_write=True)` kills a node in the middle of its
next write, keeping only a prefix of that batch's records and doing nothing else of it.

Each node applies committed commands to a tiny model (the applied list and a kv dict, with
the session table when the protocol asks for exactly-once), serves `want_snapshot` with a
msgspec image of it and `restore` from one, and answers clients. Clients and the broker are
endpoints that only record what reaches them. The network checks as it runs that no two
nodes lead in one term and that no two nodes apply different commands at one index
(`check()`), and on demand that every read answered "ok" fits the history
(`stale_reads()`).

Pure like the protocols: no time, os, zmq or module-level random.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from protocols.base import (
    BrokerWrite,
    ClientReply,
    ClientRequest,
    Command,
    Committed,
    NodeConfig,
    Order,
    Protocol,
    ReadReady,
    Ready,
    SnapshotImage,
    decode_options,
)
from protocols.base import events as ev


class ClientBundle(msgspec.Struct, frozen=True):
    """Several requests of one client delivered together (the lab's Bundle, undecoded)."""

    requests: tuple[ClientRequest, ...]


class SafetyViolation(AssertionError):
    """A property every correct protocol keeps was broken in this run."""


# -- the per-node state machine model -----------------------------------------------------


class ModelResult(msgspec.Struct, frozen=True):
    status: str  # ok | fail (cas mismatch)
    index: int
    term: int
    value: str | None = None
    duplicate: bool = False


class ModelImage(msgspec.Struct):
    applied_index: int
    applied_term: int
    kv: dict[str, str]
    orders: list[str]
    sessions: dict[str, ModelResult]
    # Commands applied per key up to the image: a per_key replica restored from its own
    # checkpoint (EPaxos) goes on counting from there in the conflict-order check.
    key_counts: dict[str, int] = {}


class Model:
    """What a node applied: `applied` [(index, term, command)] and the kv it built.

    Mirrors the runtime's state machine: `applied_index` is the index of the last command
    applied, and with `exactly_once` a request id applied before is answered from the
    session table instead of being applied again."""

    def __init__(self, exactly_once: bool) -> None:
        self.exactly_once = exactly_once
        self.applied: list[tuple[int, int, Command]] = []
        self.key_counts: dict[str, int] = {}
        self.applied_index = 0
        self.applied_term = 0
        self.kv: dict[str, str] = {}
        self.orders: list[str] = []
        self.sessions: dict[str, ModelResult] = {}

    def apply(self, index: int, term: int, c: Command) -> ModelResult:
        self.applied.append((index, term, c))
        self.key_counts[c.key] = self.key_counts.get(c.key, 0) + 1
        self.applied_index = max(self.applied_index, index)
        self.applied_term = term
        previous = self.sessions.get(c.request_id)
        if previous is not None and self.exactly_once:
            return msgspec.structs.replace(previous, duplicate=True)
        result = self._execute(index, term, c)
        if c.op != "get":
            self.sessions[c.request_id] = result
        return result

    def _execute(self, index: int, term: int, c: Command) -> ModelResult:
        if c.op == "put":
            self.kv[c.key] = c.value or ""
            return ModelResult("ok", index, term, c.value)
        if c.op == "get":
            return ModelResult("ok", index, term, self.kv.get(c.key))
        if c.op == "cas":
            current = self.kv.get(c.key)
            if current != c.expected:
                return ModelResult("fail", index, term, current)
            self.kv[c.key] = c.value or ""
            return ModelResult("ok", index, term, current)
        if c.op == "order":
            self.orders.append(c.order.order_id if c.order else c.request_id)
            return ModelResult("ok", index, term, self.orders[-1])
        raise ValueError(f"a protocol committed an unknown op {c.op!r}")

    def snapshot(self) -> bytes:
        image = ModelImage(
            self.applied_index, self.applied_term, self.kv, self.orders, self.sessions,
            self.key_counts,
        )
        return msgspec.msgpack.encode(image)

    def restore(self, data: bytes) -> None:
        image = msgspec.msgpack.decode(data, type=ModelImage)
        self.applied_index = image.applied_index
        self.applied_term = image.applied_term
        self.kv = dict(image.kv)
        self.orders = list(image.orders)
        self.sessions = dict(image.sessions)
        self.key_counts = dict(image.key_counts)


# -- clocks, nodes, records -------------------------------------------------------------


@dataclass(slots=True)
class Clock:
    """A node's clock: true + offset + drift * (true - t_set), as nodes/clock.py."""

    offset: float = 0.0
    drift: float = 0.0
    t_set: float = 0.0

    def now(self, true: float) -> float:
        return true + self.offset + self.drift * (true - self.t_set)

    def to_true(self, node_time: float) -> float:
        return (node_time - self.offset + self.drift * self.t_set) / (1.0 + self.drift)


@dataclass(slots=True)
class SimNode:
    id: str
    model: Model
    protocol: Protocol | None = None
    disk: list[msgspec.Struct] = field(default_factory=list)  # persisted records, in order
    clock: Clock = field(default_factory=Clock)
    deadline: float | None = None  # node clock
    reads: list[ReadReady] = field(default_factory=list)
    incarnation: int = 0
    crash_mid_write: bool = False
    unsynced: list[msgspec.Struct] = field(default_factory=list)  # written, not fsynced
    paused_until: float = 0.0
    key_positions: dict[str, int] = field(default_factory=dict)  # per_key: applied per key
    # Timed mode (`SimNet(timed=True)`): the node is busy (takes no input) until busy_until;
    # inputs that arrive meanwhile, or while it is paused, wait in `inbox` and are taken as
    # one batch, as the replica drains its socket; `pending` is a batch whose fsync runs.
    busy_until: float = 0.0
    inbox: list[tuple[str, msgspec.Struct]] = field(default_factory=list)
    wake_at: float | None = None
    pending: Ready | None = None
    tick_at: float = -1.0  # timed mode: the true time of the last deadline booked
    fsync_latency: float = 0.0  # the disk fault: added to every fsync
    stall_until: float = 0.0  # the disk fault: fsyncs block until then (true time)
    # Recovered from a corrupt log and not repaired yet (the replica's `wal.damaged`
    # marker, which outlives restarts), and the records it held after the corrupt one.
    damaged: bool = False
    damaged_tail: tuple[msgspec.Struct, ...] = ()
    # False: the next batch tells the runtime (`SimNet._touched`) that what the node's
    # status shows may have moved; the simulator's status telemetry clears it when it has
    # published, so a node pays one call per status period, not one per batch.
    status_touched: bool = True

    @property
    def alive(self) -> bool:
        return self.protocol is not None


@dataclass(frozen=True, slots=True)
class Sent:
    time: float
    src: str
    dst: str
    msg: msgspec.Struct


@dataclass(frozen=True, slots=True)
class SimEvent:
    time: float  # true time
    node: str
    kind: str
    data: dict[str, Any]


# What a message trace is told (SimNet.tracer): send time, wait until delivery (None if
# never delivered), src, dst, fate, the message.
Tracer = Callable[[float, "float | None", str, str, str, msgspec.Struct], None]
# A message in flight: (delivery time, sequence, src, dst, msg, dst incarnation, send
# time). The network's own work rides the same queue with an empty src: a call
# (`SimNet.at`: the function in msg's place, dst empty too), or a node's wake, fsync
# return or tick (dst the node, msg one of the markers below).
_Flight = tuple[float, int, str, str, Any, int, float]


class _Wake(msgspec.Struct):
    """Not a message: a node may take its waiting inputs now (timed mode)."""


class _Synced(msgspec.Struct):
    """Not a message: a node's fsync returned (timed mode)."""


class _Tick(msgspec.Struct):
    """Not a message: a node's deadline may have come (timed mode keeps deadlines in the
    queue; a stale one finds the deadline moved and does nothing)."""


_WAKE = _Wake()
_SYNCED = _Synced()
_TICK = _Tick()
MAX_DRAIN = 512  # inputs taken into one batch at most, as the replica drains its socket


class SimNet:
    def __init__(
        self,
        protocol: type[Protocol],
        nodes: int | Iterable[str] = 3,
        *,
        options: msgspec.Struct | dict[str, Any] | None = None,
        seed: int = 0,
        latency: tuple[float, float] = (0.001, 0.004),
        record: bool = True,
        start: bool = True,
        model: Callable[[bool], Any] | None = None,
        timed: bool = False,
        service_time: float = 0.0,
        fsync_time: float = 0.0,
        checks: bool = True,
    ) -> None:
        self.protocol = protocol
        self.ids: tuple[str, ...] = (
            tuple(f"r{i}" for i in range(nodes)) if isinstance(nodes, int) else tuple(nodes)
        )
        if not self.ids or len(set(self.ids)) != len(self.ids):
            raise ValueError(f"need distinct node ids, got {self.ids}")
        if isinstance(options, msgspec.Struct):
            self.options = options
        else:
            self.options = decode_options(protocol.Options, options or {})
        self.exactly_once = protocol.exactly_once
        self.display = protocol.display()  # which roles lead (`leaders()`)
        # The state machine each node applies to: `Model` here; the simulator (sim/) gives
        # the runtime's own (nodes/state_machine.py), session table and all.
        self.make_model: Callable[[bool], Any] = model or Model
        # Timed mode: a batch costs `service_time` of the node's time (CPU) and a batch
        # that persists `fsync_time` more (plus the disk fault's latency and stall); inputs
        # arriving while a node is busy or paused are drained as one batch afterwards.
        # Off (the default), every input is handled alone, in no time.
        self.timed = timed
        self.service_time = service_time
        self.fsync_time = fsync_time
        # The network's own safety checks (one leader per term, one command per index):
        # the simulator leaves them to the lab's checkers.
        self.checks = checks
        # A read is answered with seq = the applied index (exact, for `stale_reads`), or,
        # as the replica runtime does, the read's own index ("index").
        self.read_seq = "applied"
        self.per_key = protocol.ordering == "per_key"
        self.rng = random.Random(seed)
        self.now = 0.0
        self.nodes = {i: SimNode(i, self.make_model(self.exactly_once)) for i in self.ids}

        # The network.
        self.latency = latency
        self.loss = 0.0
        self.duplicate = 0.0
        self.reorder = False
        self.cuts: set[tuple[str, str]] = set()
        self.link_loss: dict[tuple[str, str], float] = {}
        # Directed link -> rule (faults.links.LinkRule, or anything with its fields: drop,
        # delay, jitter, loss, duplicate), applied as the fault router does when a message
        # is sent: a partition drops it, a delay holds it (FIFO per link kept).
        self.rules: dict[tuple[str, str], Any] = {}
        # A test's own rule: return False to drop a message (sent, then lost).
        self.filter: Callable[[str, str, msgspec.Struct], bool] | None = None
        self._queue: list[_Flight] = []
        self._seq = itertools.count()
        self._link_time: dict[tuple[str, str], float] = {}
        self._duplicates: set[int] = set()  # sequence numbers of duplicated copies in flight
        # Timed mode: told every message's fate once it is known, for a message trace:
        # tracer(sent, wait or None, src, dst, fate, msg), fate one of "delivered",
        # "duplicate" (a rule's second copy, delivered), "dropped" (a cut or a drop
        # rule), "lost" (a loss rule), "unroutable" (its destination process is gone).
        self.tracer: Tracer | None = None

        # What happened.
        self.record = record
        self.sent: list[Sent] = []
        self.counts: Counter[str] = Counter()
        self.dropped = 0
        self.events: list[SimEvent] = []
        self.replies: list[tuple[float, str, ClientReply]] = []
        self.broker: list[tuple[float, str, BrokerWrite]] = []
        self.applied_at: dict[int, tuple[int, Command]] = {}  # first (term, command) per index
        # per_key ordering: the first replica's sequence of request ids per key.
        self.applied_per_key: dict[str, list[str]] = {}
        self.byzantine: dict[str, str] = {}  # node -> mode; their applies prove nothing
        self.leaders_by_term: dict[int, str] = {}
        self.violations: list[str] = []
        self._request_ids = itertools.count(1)

        if start:
            for i in self.ids:
                self._boot(self.nodes[i])

    # -- running ---------------------------------------------------------------------------

    def step(self) -> bool:
        """Carry out the next delivery or deadline. False if nothing is left to happen."""
        return self._step(math.inf)

    def run_for(self, duration: float) -> None:
        end = self.now + duration
        if self.timed:
            self._run_timed(end, None)
        else:
            while self._step(end):
                pass
        self.now = max(self.now, end)

    def run_until(self, predicate: Callable[[], bool], max_time: float = 10.0) -> bool:
        """Step until `predicate()` holds (True) or `max_time` virtual seconds pass (False)."""
        end = self.now + max_time
        if predicate():
            return True
        if self.timed:
            if self._run_timed(end, predicate):
                return True
        else:
            while self._step(end):
                if predicate():
                    return True
        self.now = max(self.now, end)
        return predicate()

    def _run_timed(self, end: float, predicate: Callable[[], bool] | None) -> bool:
        """`_step` in a loop for timed mode, the simulator's hot loop (a few hundred
        thousand events a run): True as soon as `predicate` holds."""
        queue, pop, deliver = self._queue, heapq.heappop, self._deliver
        if predicate is None:
            while queue and queue[0][0] <= end:
                flight = pop(queue)
                if flight[0] > self.now:
                    self.now = flight[0]
                deliver(flight)
            return False
        while queue and queue[0][0] <= end:
            flight = pop(queue)
            if flight[0] > self.now:
                self.now = flight[0]
            deliver(flight)
            if predicate():
                return True
        return False

    def _step(self, limit: float) -> bool:
        if self.timed:  # deadlines are in the queue too
            if not self._queue or self._queue[0][0] > limit:
                return False
            flight = heapq.heappop(self._queue)
            self.now = max(self.now, flight[0])
            self._deliver(flight)
            return True
        t_msg = self._queue[0][0] if self._queue else math.inf
        t_tick, ticker = math.inf, None
        for n in self.nodes.values():
            if n.protocol is not None and n.deadline is not None:
                t = max(n.clock.to_true(n.deadline), n.paused_until, n.busy_until, self.now)
                if t < t_tick:
                    t_tick, ticker = t, n
        t = min(t_msg, t_tick)
        if t > limit or t == math.inf:
            return False
        self.now = max(self.now, t)
        if t_msg <= t_tick:
            self._deliver(heapq.heappop(self._queue))
        else:
            assert ticker is not None
            self._tick(ticker)
        return True

    def _tick(self, node: SimNode) -> None:
        assert node.protocol is not None
        if self.timed:
            self._wake(node)
            return
        # The clock reads the deadline at this true time, up to float rounding: never let
        # rounding make a tick arrive (ever so slightly) early, which would repeat forever.
        now = max(node.clock.now(self.now), node.deadline or -math.inf)
        node.deadline = None
        ready = node.protocol.on_tick(now)
        if ready.next_deadline is not None and ready.next_deadline <= now:
            raise RuntimeError(f"{node.id} asked for a tick at {ready.next_deadline} at {now}")
        self._carry_out(node, ready)

    def _deliver(self, flight: _Flight) -> None:
        t, seq, src, dst, msg, incarnation, sent = flight
        if not src:  # the network's own work, not a message
            if not dst:
                msg()  # a call (`at`)
                return
            target = self.nodes[dst]
            if target.protocol is None or target.incarnation != incarnation:
                return
            if msg is _WAKE:
                target.wake_at = None
                self._wake(target)
            elif msg is _SYNCED:
                self._synced(target)
            else:  # _Tick
                if t == target.tick_at:
                    target.tick_at = -1.0  # the booked tick: none is booked now
                deadline = target.deadline
                if deadline is None:
                    return
                if target.clock.to_true(deadline) <= self.now:
                    self._wake(target)
                else:  # the deadline moved on since this was booked: book it
                    self._schedule_tick(target)
            return
        if self.cuts and (src, dst) in self.cuts:
            self.dropped += 1  # the link was cut while the message was in flight
            self._duplicates.discard(seq)
            if self.tracer is not None:
                self.tracer(sent, None, src, dst, "dropped", msg)
            return
        duplicate = bool(self._duplicates) and seq in self._duplicates
        if duplicate:
            self._duplicates.discard(seq)
        node = self.nodes.get(dst)
        if node is None:
            if self.tracer is not None:
                self.tracer(sent, self.now - sent, src, dst,
                            "duplicate" if duplicate else "delivered", msg)  # fmt: skip
            self._arrive_at_endpoint(src, dst, msg)
            return
        if node.protocol is None or node.incarnation != incarnation:
            self.dropped += 1  # sent to a process that is gone
            if self.tracer is not None:
                self.tracer(sent, None, src, dst, "unroutable", msg)
            return
        if self.tracer is not None:
            self.tracer(sent, self.now - sent, src, dst,
                        "duplicate" if duplicate else "delivered", msg)  # fmt: skip
        now = self.now
        if self.timed:
            if node.inbox or node.paused_until > now or node.busy_until > now:
                node.inbox.append((src, msg))
                self._schedule_wake(node)
                return
            # The hot path (most messages find their node idle): _input and _carry_out
            # spelled out.
            protocol = node.protocol
            kind = type(msg)
            if kind is ClientRequest:
                ready = protocol.on_client(node.clock.now(now), src, msg)  # type: ignore[arg-type]
            elif kind is ClientBundle:
                ready = protocol.on_clients(node.clock.now(now), src, list(msg.requests))  # type: ignore[attr-defined]
            else:
                ready = protocol.on_message(node.clock.now(now), src, msg)
            self._carry_out_timed(node, ready)
            return
        if node.paused_until > now:
            heapq.heappush(self._queue, (node.paused_until, seq, src, dst, msg, incarnation, sent))
            return
        self._carry_out(node, self._input(node, node.clock.now(now), src, msg))

    def _input(self, node: SimNode, now: float, src: str, msg: msgspec.Struct) -> Ready:
        assert node.protocol is not None
        kind = type(msg)
        if kind is ClientRequest:
            return node.protocol.on_client(now, src, msg)  # type: ignore[arg-type]
        if kind is ClientBundle:
            return node.protocol.on_clients(now, src, list(msg.requests))  # type: ignore[attr-defined]
        return node.protocol.on_message(now, src, msg)

    # -- timed mode: busy nodes, batches, fsyncs ----------------------------------------------

    def at(self, t: float, fn: Callable[[], None]) -> None:
        """Call `fn()` when the network's true time reaches `t` (in order with everything
        else due then): how a runtime on the network schedules its own work."""
        heapq.heappush(self._queue, (max(t, self.now), next(self._seq), "", "", fn, 0, 0.0))

    def _schedule_wake(self, node: SimNode) -> None:
        t = max(node.paused_until, node.busy_until, self.now)
        if (
            node.pending is not None
            or t == math.inf
            or (node.wake_at is not None and node.wake_at <= t)
        ):
            return  # a wake (or the fsync's return) comes first anyway
        node.wake_at = t
        heapq.heappush(self._queue, (t, next(self._seq), "", node.id, _WAKE, node.incarnation, 0.0))

    def _wake(self, node: SimNode) -> None:
        """Take the inputs that waited (up to MAX_DRAIN) and a due tick as one batch."""
        if node.pending is not None:
            return  # its fsync has not returned: the node is busy
        if node.paused_until > self.now or node.busy_until > self.now:
            self._schedule_wake(node)
            return
        assert node.protocol is not None
        now = node.clock.now(self.now)
        batch: Ready | None = None
        if node.inbox:
            if len(node.inbox) <= MAX_DRAIN:
                taken, node.inbox = node.inbox, []
            else:
                taken, node.inbox = node.inbox[:MAX_DRAIN], node.inbox[MAX_DRAIN:]
            for src, msg in taken:
                ready = self._input(node, now, src, msg)
                # The first input's batch is the batch (an empty one merged with it is
                # the same sealed batch; most batches hold one input).
                batch = ready.seal() if batch is None else batch.merge(ready)
                if node.protocol is None:
                    return
        if batch is None:
            batch = Ready()
        if node.deadline is not None and node.clock.to_true(node.deadline) <= self.now:
            # As in _tick: never let float rounding make a tick arrive early.
            tick_now = max(now, node.deadline)
            node.deadline = None
            ready = node.protocol.on_tick(tick_now)
            if ready.next_deadline is not None and ready.next_deadline <= tick_now:
                raise RuntimeError(f"{node.id} asked for a tick at {ready.next_deadline}")
            batch.merge(ready)
        if not batch.is_empty() or batch.next_deadline is not None:
            self._carry_out(node, batch)
        if node.inbox and node.protocol is not None:
            self._schedule_wake(node)

    def _schedule_tick(self, node: SimNode, force: bool = False) -> None:
        if node.deadline is not None and node.protocol is not None:
            t = max(node.clock.to_true(node.deadline), self.now)
            if not force and 0.0 <= node.tick_at <= t:
                # A tick is booked at or before it (the same heartbeat timer, or an election
                # timer a message just pushed back): that one fires, finds the deadline
                # not due and books this one then. One queue entry per timer period
                # instead of one per message that moved it.
                return
            node.tick_at = t
            heapq.heappush(self._queue, (t, next(self._seq), "", node.id, _TICK,
                                         node.incarnation, 0.0))  # fmt: skip

    def _fsync_cost(self, node: SimNode) -> float:
        return self.fsync_time + node.fsync_latency + max(0.0, node.stall_until - self.now)

    def _carry_out_timed(self, node: SimNode, ready: Ready) -> None:
        """Timed mode: parallel messages leave now; a batch that persists waits for its
        fsync (the node busy meanwhile, a kill then tearing the write), then the rest."""
        if ready.compact is None:
            for dst, msg in ready.parallel:
                self._send(node.id, dst, msg)
            ready.parallel = []
        node.busy_until = self.now + self.service_time
        if ready.persist or ready.compact is not None:
            cost = self._fsync_cost(node)
            if cost > 0:
                node.busy_until += cost
                node.pending = ready
                heapq.heappush(self._queue, (node.busy_until, next(self._seq), "", node.id,
                                             _SYNCED, node.incarnation, 0.0))  # fmt: skip
                return
        self._finish(node, ready)

    def _synced(self, node: SimNode) -> None:
        if node.paused_until > self.now:
            # SIGSTOP: the write is done, but the process goes on only when resumed.
            heapq.heappush(self._queue, (node.paused_until, next(self._seq), "", node.id,
                                         _SYNCED, node.incarnation, 0.0))  # fmt: skip
            return
        ready, node.pending = node.pending, None
        if ready is not None:
            self._finish(node, ready)
        if node.protocol is not None and node.pending is None and node.inbox:
            self._schedule_wake(node)

    def _arrive_at_endpoint(self, src: str, dst: str, msg: msgspec.Struct) -> None:
        if isinstance(msg, BrokerWrite):
            self.broker.append((self.now, src, msg))
        elif isinstance(msg, ClientReply):
            self.replies.append((self.now, dst, msg))

    # -- carrying out a Ready ----------------------------------------------------------------

    def _carry_out(self, node: SimNode, ready: Ready) -> None:
        if self.timed:
            self._carry_out_timed(node, ready)
            return
        next_ready: Ready | None = ready
        while next_ready is not None:
            next_ready = self._finish(node, next_ready)

    def _finish(self, node: SimNode, ready: Ready) -> Ready | None:
        """Carry out `ready` in the order of obligation; the batch answering its
        `want_snapshot`, if it asked for one (timed mode: parallel messages left already)."""
        if not node.status_touched:
            node.status_touched = True
            self._touched(node)
        # 0. messages that may overtake this batch's fsync (a leader's own new entries):
        # a crash in the middle of the write below has sent them already.
        early = ready.compact is None
        if early:
            for dst, msg in ready.parallel:
                self._send(node.id, dst, msg)
        # 1. persist, before anything else of this batch leaves (a compaction first
        # replaces the whole disk with the protocol's complete durable state).
        if ready.compact is not None:
            node.disk = list(ready.compact)
            node.unsynced = []
        if ready.persist:
            # One fsync covers the lazily written records before these (append-only);
            # a crash in the middle keeps a prefix of both.
            written, node.unsynced = [*node.unsynced, *ready.persist], []
            if node.crash_mid_write:
                node.disk.extend(written[: self.rng.randrange(len(written))])
                self._kill(node)
                return None
            node.disk.extend(written)
        # 2. messages.
        for dst, msg in ready.messages if early else [*ready.parallel, *ready.messages]:
            self._send(node.id, dst, msg)
        # 3. restore, apply and answer. A restore replaces everything applied so far, so
        # it goes first: commands in the same batch come after the snapshot.
        if ready.restore is not None:
            before = node.model.applied_index
            node.model.restore(ready.restore.data)
            if self.checks and self.per_key:  # the key-order check's positions (SimModel)
                node.key_positions = dict(node.model.key_counts)
            self._restored(node, before)
        for c in ready.committed:
            self._apply(node, c)
        if ready.committed:
            self._applied_batch(node)
        if ready.reads:
            node.reads.extend(ready.reads)
        if node.reads:  # (reads wait for their index: any batch may let some go)
            self._answer_reads(node)
        for dst, msg in ready.after:
            self._send(node.id, dst, msg)
        # 3b. records written after the answers without an fsync: durable with the
        # next batch that persists, and any crash before it may lose a suffix of them.
        if ready.persist_after:
            if node.crash_mid_write:
                node.unsynced.extend(ready.persist_after)
                self._kill(node)
                return None
            node.unsynced.extend(ready.persist_after)
        # 4. events.
        for e in ready.events:
            if e.kind == ev.WAL_REPAIRED:  # as the replica drops its `wal.damaged` marker
                node.damaged, node.damaged_tail = False, ()
            self._record_event(node, e.kind, e.data)
        # 5. next deadline.
        if ready.next_deadline is not None:
            node.deadline = ready.next_deadline
            if self.timed:
                self._schedule_tick(node)
        if not ready.want_snapshot or node.protocol is None:
            return None
        m = node.model
        image = SnapshotImage(m.applied_index, m.applied_term, m.snapshot())
        later = node.protocol.on_snapshot(node.clock.now(self.now), image)
        if self.timed:
            self._carry_out_timed(node, later)
            return None
        return later

    # Hooks for a runtime built on the network (sim/): what a node applied, per command
    # (with the state machine's result) and per batch, what a restore brought, and that
    # its status may have moved.

    def _applied(self, node: SimNode, c: Committed, result: Any) -> None:
        pass

    def _touched(self, node: SimNode) -> None:
        """A batch ran on a node whose `status_touched` was cleared."""

    def _applied_batch(self, node: SimNode) -> None:
        pass

    def _restored(self, node: SimNode, before: int) -> None:
        pass

    def _apply(self, node: SimNode, c: Committed) -> None:
        m = node.model
        if not self.checks:
            pass
        elif c.index <= m.applied_index:
            self._violation(f"{node.id} applied index {c.index} after {m.applied_index}")
        if not self.checks:
            pass
        elif node.id in self.byzantine:
            pass  # a liar's state is whatever it says: safety is about the honest replicas
        elif self.per_key:
            self._check_key_order(node, c)
        elif (first := self.applied_at.setdefault(c.index, (c.term, c.command)))[
            1
        ] != c.command or (
            # PBFT may commit one request at one sequence number in different views at
            # different replicas (re-proposed by a new primary): only the command must agree.
            first[0] != c.term and not self.protocol.byzantine_tolerant
        ):
            self._violation(
                f"divergence at index {c.index}: {node.id} applied {c.command} (term {c.term}),"
                f" another node {first[1]} (term {first[0]})"
            )
        result = m.apply(c.index, c.term, c.command)
        self._applied(node, c, result)
        if c.reply:
            status = "ok" if result.status == "ok" else "fail"
            reply = ClientReply(
                request_id=c.command.request_id,
                status=status,
                node=node.id,
                term=result.term,
                seq=result.index,
                value=result.value,
            )
            self._send(node.id, c.command.client, reply)

    def _check_key_order(self, node: SimNode, c: Committed) -> None:
        """per_key ordering: the k-th command a replica applies on a key is the k-th every
        other replica applies on it (the conflict-order invariant)."""
        key = c.command.key
        position = node.key_positions.get(key, 0)
        node.key_positions[key] = position + 1
        order = self.applied_per_key.setdefault(key, [])
        if position == len(order):
            order.append(c.command.request_id)
        elif order[position] != c.command.request_id:
            self._violation(
                f"conflict order on key {key!r}: {node.id} applied {c.command.request_id}"
                f" as command {position + 1}, another replica {order[position]}"
            )

    def _answer_reads(self, node: SimNode) -> None:
        waiting = []
        for r in node.reads:
            if r.index > node.model.applied_index:
                waiting.append(r)
                continue
            reply = ClientReply(
                request_id=r.request.command.request_id,
                status="ok",
                node=node.id,
                term=r.term,
                # The index the answer reflects: the state may be past the read index by
                # now, which is fine (still committed, still within the read's lifetime).
                seq=node.model.applied_index if self.read_seq == "applied" else r.index,
                value=node.model.kv.get(r.request.command.key),
            )
            self._send(node.id, r.client, reply)
        node.reads = waiting

    def _record_event(self, node: SimNode, kind: str, data: dict[str, Any]) -> None:
        self.events.append(SimEvent(self.now, node.id, kind, dict(data)))
        if kind == ev.BECAME_LEADER:
            term = data["term"]
            holder = self.leaders_by_term.setdefault(term, node.id)
            if holder != node.id:
                self._violation(f"two leaders in term {term}: {holder} and {node.id}")

    def _violation(self, text: str) -> None:
        self.violations.append(f"t={self.now:.4f}: {text}")

    def check(self) -> None:
        """Raise SafetyViolation if any run-time check failed so far."""
        if self.violations:
            raise SafetyViolation("\n".join(self.violations))

    # -- the network -----------------------------------------------------------------------

    def _send(self, src: str, dst: str, msg: msgspec.Struct) -> None:
        self.counts[type(msg).__name__] += 1
        now = self.now
        if self.record:
            self.sent.append(Sent(now, src, dst, msg))
        link = (src, dst)
        tracer = self.tracer
        if (self.filter is not None and not self.filter(src, dst, msg)) or (
            self.cuts and link in self.cuts
        ):
            self.dropped += 1
            if tracer is not None:
                tracer(now, None, src, dst, "dropped", msg)
            return
        p = self.loss
        if self.link_loss:
            p = max(p, self.link_loss.get(link, 0.0))
        dup = self.duplicate
        rule = self.rules.get(link) if self.rules else None
        if rule is not None:
            if rule.drop:
                self.dropped += 1
                if tracer is not None:
                    tracer(now, None, src, dst, "dropped", msg)
                return
            p = max(p, rule.loss)
            dup = max(dup, rule.duplicate)
        rng = self.rng
        if p and rng.random() < p:
            self.dropped += 1
            if tracer is not None:
                tracer(now, None, src, dst, "lost", msg)
            return
        copies = 2 if dup and rng.random() < dup else 1
        target = self.nodes.get(dst)
        incarnation = target.incarnation if target is not None else 0
        lo, hi = self.latency
        if copies == 1 and (rule is None or not (rule.delay or rule.jitter)):
            # The common case, the loop below for one copy and no delay rule: the same draws.
            t = now + (lo + (hi - lo) * rng.random())
            if not self.reorder:
                last = self._link_time.get(link, 0.0)
                if last > t:
                    t = last
                self._link_time[link] = t
            heapq.heappush(self._queue, (t, next(self._seq), src, dst, msg, incarnation, now))
            return
        for copy in range(copies):
            # rng.uniform(lo, hi), spelled out: the same draw without its call.
            t = now + (lo + (hi - lo) * rng.random())
            if rule is not None and (rule.delay or rule.jitter):
                # The router's delay: delay + uniform(-jitter, +jitter), never below zero.
                held = rule.delay + (rng.uniform(-rule.jitter, rule.jitter)
                                     if rule.jitter else 0.0)  # fmt: skip
                t += max(0.0, held)
            if not self.reorder:
                # Per-link FIFO, as the fault router keeps unless reordering is asked for.
                last = self._link_time.get(link, 0.0)
                if last > t:
                    t = last
                self._link_time[link] = t
            seq = next(self._seq)
            if copy:
                self._duplicates.add(seq)  # the rule's second copy, as the trace names it
            heapq.heappush(self._queue, (t, seq, src, dst, msg, incarnation, now))

    def cut(self, a: str, b: str, oneway: bool = False) -> None:
        """Drop messages from a to b (and b to a unless `oneway`), in flight ones too."""
        self.cuts.add((a, b))
        if not oneway:
            self.cuts.add((b, a))

    def isolate(self, node: str, clients: Iterable[str] = ()) -> None:
        """Cut `node` from every other replica (and from the named client endpoints)."""
        for other in (*self.ids, *clients):
            if other != node:
                self.cut(node, other)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every replica link between different groups; unlisted replicas are alone."""
        group_of: dict[str, object] = {}
        for g, members in enumerate(groups):
            for m in members:
                group_of[m] = g
        for i, a in enumerate(self.ids):
            for b in self.ids[i + 1 :]:
                if group_of.get(a, a) != group_of.get(b, b):
                    self.cut(a, b)

    def drop(self, src: str, dst: str, p: float) -> None:
        """Lose messages from src to dst with probability p."""
        self.link_loss[(src, dst)] = p

    def heal(self) -> None:
        """Remove every cut and every loss rate (the global `loss` included)."""
        self.cuts.clear()
        self.link_loss.clear()
        self.loss = 0.0

    recover = heal  # etcd's name

    # -- nodes -----------------------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        rng = random.Random(self.rng.getrandbits(64))
        config = NodeConfig(node.id, self.ids, self.options, rng, damaged=node.damaged,
                            damaged_tail=node.damaged_tail)  # fmt: skip
        node.protocol = self.protocol(config)
        node.model = self.make_model(self.exactly_once)  # the state machine starts empty
        node.key_positions = {}
        node.reads = []
        node.deadline = None
        node.crash_mid_write = False
        ready = node.protocol.start(node.clock.now(self.now), list(node.disk))
        self._carry_out(node, ready)

    def _kill(self, node: SimNode, power_loss: bool = True) -> None:
        pending, node.pending = node.pending, None
        if not power_loss:
            # The process died, the machine did not (SIGKILL): what it wrote is in the
            # page cache and reaches the disk, fsynced or not.
            if pending is not None and pending.compact is not None:
                node.disk = list(pending.compact)
                node.unsynced = []
            node.unsynced = [*node.unsynced, *(pending.persist if pending is not None else [])]
            node.disk.extend(node.unsynced)
            node.unsynced = []
        elif pending is not None:
            # Killed while its fsync ran (timed mode): a compaction's rename happened or
            # not, and of the appended records a prefix made it (a torn tail).
            if pending.compact is not None and self.rng.random() < 0.5:
                node.disk = list(pending.compact)
                node.unsynced = []
            node.unsynced = [*node.unsynced, *pending.persist]
        # Records written without an fsync: a prefix of them made it to the platter.
        if node.unsynced:
            node.disk.extend(node.unsynced[: self.rng.randrange(len(node.unsynced) + 1)])
            node.unsynced = []
        node.protocol = None
        node.deadline = None
        node.reads = []
        node.crash_mid_write = False
        node.incarnation += 1  # messages in flight to the old process are lost
        node.inbox = []
        node.wake_at = None
        node.busy_until = 0.0
        node.paused_until = 0.0  # a stopped process can be killed; it restarts running
        node.tick_at = -1.0

    def crash(self, node: str, mid_write: bool = False, power_loss: bool = True) -> None:
        """Kill `node` now; or, with `mid_write`, in the middle of its next write: only a
        prefix of that batch's records reaches the disk, nothing else of it happens. A
        power loss (the default) keeps only a prefix of what was written without an fsync;
        without it (SIGKILL: the machine stays up) everything written survives."""
        n = self.nodes[node]
        if not n.alive:
            raise RuntimeError(f"{node} is not running")
        if mid_write:
            n.crash_mid_write = True
        else:
            self._kill(n, power_loss)

    def restart(self, node: str) -> None:
        """Start a new process for `node` from the records it persisted."""
        n = self.nodes[node]
        if n.alive:
            raise RuntimeError(f"{node} is running")
        self._boot(n)

    def restart_all(self) -> None:
        """Cancel armed mid-write crashes and restart every crashed node."""
        for n in self.nodes.values():
            n.crash_mid_write = False
            if not n.alive:
                self._boot(n)

    def pause(self, node: str, duration: float) -> None:
        """Freeze `node` (a GC pause): inputs wait, its clock runs on."""
        n = self.nodes[node]
        n.paused_until = max(n.paused_until, self.now + duration)

    def resume(self, node: str) -> None:
        """End `node`'s pause now; what waited for it is taken at once."""
        n = self.nodes[node]
        n.paused_until = self.now
        if self.timed and n.protocol is not None and n.inbox:
            n.wake_at = None
            self._schedule_wake(n)

    def set_clock(self, node: str, offset: float | None = None, drift: float | None = None) -> None:
        c = self.nodes[node].clock
        skew = c.offset + c.drift * (self.now - c.t_set)
        c.offset = skew if offset is None else offset
        if drift is not None:
            if drift <= -1.0:
                raise ValueError(f"drift must be > -1: {drift}")
            c.drift = drift
        c.t_set = self.now
        if self.timed:
            self._schedule_tick(self.nodes[node], force=True)  # another true time now

    def set_byzantine(self, node: str, mode: str | None) -> None:
        """Make `node` misbehave as `mode` (None: honest again); from now on its applies
        are not held against the protocol."""
        n = self.nodes[node]
        if mode is not None:
            self.byzantine[node] = mode
        ready = self.proto(node).set_byzantine(n.clock.now(self.now), mode)
        self._carry_out(n, ready)

    def alive(self) -> list[str]:
        return [i for i in self.ids if self.nodes[i].alive]

    def proto(self, node: str) -> Protocol:
        """The running protocol object of `node`."""
        p = self.nodes[node].protocol
        if p is None:
            raise RuntimeError(f"{node} is not running")
        return p

    def status(self, node: str) -> dict[str, Any]:
        return self.proto(node).status()

    def node_now(self, node: str) -> float:
        return self.nodes[node].clock.now(self.now)

    # -- leaders -----------------------------------------------------------------------------

    def leaders(self) -> list[str]:
        """Running nodes that believe they lead (in a role the protocol declares leading:
        Raft's leader, PBFT's primary), in any term."""
        return [i for i in self.alive() if self.display.leads(self.status(i)["role"])]

    def leader(self) -> str | None:
        """The running leader of the highest term, if any."""
        best: tuple[int, str] | None = None
        for i in self.leaders():
            term = self.status(i)["term"]
            if best is None or term > best[0]:
                best = (term, i)
        return best[1] if best else None

    def agreed_leader(self, exclude: Iterable[str] = ()) -> str | None:
        """A leader that a majority of all replicas (itself included) follow in its term;
        nodes in `exclude` (an old leader, say) neither count nor qualify."""
        skip = set(exclude)
        candidates = [i for i in self.leaders() if i not in skip]
        if not candidates:
            return None
        lead = max(candidates, key=lambda i: self.status(i)["term"])
        term = self.status(lead)["term"]
        followers = sum(
            1
            for i in self.alive()
            if i not in skip and self.status(i)["term"] == term and self.status(i)["leader"] == lead
        )
        return lead if followers >= len(self.ids) // 2 + 1 else None

    def wait_leader(self, max_time: float = 5.0, exclude: Iterable[str] = ()) -> str:
        """Run until a majority agrees on a leader (not one of `exclude`); raise if none
        emerges within `max_time`."""
        skip = tuple(exclude)
        if not self.run_until(lambda: self.agreed_leader(skip) is not None, max_time):
            raise TimeoutError(f"no agreed leader after {max_time}s (t={self.now:.3f})")
        lead = self.agreed_leader(skip)
        assert lead is not None
        return lead

    # -- clients -------------------------------------------------------------------------------

    def request(
        self,
        node: str,
        command: Command,
        read_mode: str = "log",
    ) -> str:
        """Send `command` from its client endpoint to `node`; returns its request id."""
        self._send(command.client, node, ClientRequest(command, read_mode))
        return command.request_id

    def request_bundle(self, node: str, commands: list[Command]) -> list[str]:
        """Send `commands` (one client's) to `node` as one bundle, as a load generator's
        turn does in the lab; returns their request ids."""
        self._send(
            commands[0].client, node, ClientBundle(tuple(ClientRequest(c) for c in commands))
        )
        return [c.request_id for c in commands]

    def command(self, op: str, client: str = "c0", request_id: str = "", **fields: Any) -> Command:
        rid = request_id or f"{client}-{next(self._request_ids)}"
        return Command(request_id=rid, client=client, op=op, **fields)

    def put(self, node: str, key: str, value: str, client: str = "c0") -> str:
        return self.request(node, self.command("put", client, key=key, value=value))

    def get(self, node: str, key: str, read_mode: str = "log", client: str = "c0") -> str:
        return self.request(node, self.command("get", client, key=key), read_mode)

    def order(self, node: str, order_id: str, client: str = "c0") -> str:
        order = Order(order_id=order_id, user="u", side="buy", qty=1, symbol="ACME")
        return self.request(node, self.command("order", client, order=order))

    def replies_for(self, request_id: str) -> list[ClientReply]:
        return [r for _, _, r in self.replies if r.request_id == request_id]

    def reply_for(self, request_id: str) -> ClientReply | None:
        """The first reply to `request_id` that reached its client, if any."""
        for _, _, r in self.replies:
            if r.request_id == request_id:
                return r
        return None

    # -- what happened ---------------------------------------------------------------------------

    def events_of(self, kind: str, node: str | None = None) -> list[SimEvent]:
        return [e for e in self.events if e.kind == kind and (node is None or e.node == node)]

    def messages_of(self, type_name: str, since: float = -math.inf) -> list[Sent]:
        return [s for s in self.sent if type(s.msg).__name__ == type_name and s.time >= since]

    def applied(self, node: str) -> list[tuple[int, int, Command]]:
        """What `node`'s current process applied, in order."""
        return list(self.nodes[node].model.applied)

    def kv(self, node: str) -> dict[str, str]:
        return dict(self.nodes[node].model.kv)

    def stale_reads(self) -> list[str]:
        """Reads answered "ok" that no linearization allows (needs `record`).

        A read answered at `seq` must return the value the applied history gives the key
        at `seq`, and `seq` must not be below the index of any write acknowledged before
        the read was sent (real-time order): a deposed leader's read fails the second."""
        invoked: dict[str, float] = {}
        for s in self.sent:
            if isinstance(s.msg, ClientRequest):
                invoked.setdefault(s.msg.command.request_id, s.time)
        acked: list[tuple[float, int]] = []  # (when the client heard, index) of writes
        reads: list[tuple[ClientReply, Command]] = []
        commands = {s.msg.command.request_id: s.msg.command for s in self.sent
                    if isinstance(s.msg, ClientRequest)}  # fmt: skip
        seen: set[str] = set()
        for t, _, reply in self.replies:
            command = commands.get(reply.request_id)
            if reply.status != "ok" or command is None or reply.seq is None:
                continue
            if command.op == "get":
                reads.append((reply, command))
            elif reply.request_id not in seen:
                seen.add(reply.request_id)
                acked.append((t, reply.seq))
        history = sorted(self.applied_at.items())
        problems = []
        for reply, command in reads:
            assert reply.seq is not None
            model = Model(self.exactly_once)
            for index, (term, c) in history:
                if index > reply.seq:
                    break
                model.apply(index, term, c)
            if model.kv.get(command.key) != reply.value:
                problems.append(
                    f"read {reply.request_id} at {reply.seq} returned {reply.value!r},"
                    f" the history has {model.kv.get(command.key)!r}"
                )
            start = invoked[reply.request_id]
            missed = [seq for t, seq in acked if t <= start and seq > reply.seq]
            if missed:
                problems.append(
                    f"read {reply.request_id} at {reply.seq} misses writes acknowledged"
                    f" before it was sent (at {missed[:3]})"
                )
        return problems
