"""The dashboard's picture of one lab: what every panel renders, folded from messages.

The app owns one `LabModel`; workers' messages (status polls, telemetry batches) are folded
into it and widgets read it on the refresh tick. Nothing here touches Textual, a socket or
the clock: time comes in as arguments (the lab's true time, the machine's monotonic clock),
which is what lets tests and snapshots feed a fake lab and get the same picture every time.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from protocols.display import DEFAULT_DISPLAY, DOWN_GLYPH, LEASE_GLYPH, PAUSED_GLYPH, Display
from tui import eventtext
from tui.linkrules import Rule, link_rules

SERIES = 240  # seconds of chart history kept (more than the widest terminal shows)
EVENTS = 1000  # event lines kept
COMMIT_NOTE_EVERY = 5.0  # seconds between two sampled "commits" lines
# What each panel watches in `changes`; "roles" moves when who leads, who is paused or down
# changes (panels that throttle their repaints never delay that).
AREAS = ("nodes", "links", "charts", "faults", "roles")


_NUMBER = (int, float)
# Fields the panels compute with, and the types they must have (None is always allowed).
_FIELDS: dict[str, tuple[type, ...]] = {
    "role": (str,), "leader": (str,), "state": (str,),
    "term": (int,), "commit_index": (int,), "applied_index": (int,), "log": (int,),
    "lease_expiry": _NUMBER, "lease_expiry_true": _NUMBER, "paused_for": _NUMBER,
    "clock_offset": _NUMBER, "clock_drift": _NUMBER, "pid": (int,), "starts": (int,),
}  # fmt: skip


def checked(record: dict[str, Any]) -> dict[str, Any]:
    """`record` if every field the panels compute with has its type; ValueError if not.

    Records come from other processes: a bad one is refused whole (and counted by the
    caller) rather than stored to fail later in a render."""
    if not isinstance(record, dict):
        raise ValueError(f"not a mapping: {record!r}")
    for key, types in _FIELDS.items():
        v = record.get(key)
        if v is not None and (not isinstance(v, types) or isinstance(v, bool)):
            raise ValueError(f"{key} = {v!r}")
    return record


def _who(nodes: dict[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(n, s.get("state"), s.get("role"), s.get("leader"), s.get("term"))
            for n, s in nodes.items()]  # fmt: skip


@dataclass(frozen=True)
class EventLine:
    seq: int
    t: float  # true time
    text: str
    style: str
    # A line that folds repeats (elections): what it folds, and the line it replaces.
    fold: tuple[Any, ...] | None = None  # (src, pre_vote, count, first term, last term)
    replaces: int | None = None


FOLD_WINDOW = 8  # a repeat folds into its line while at most this many lines came after it


@dataclass(frozen=True)
class Sample:
    """One second of one node's timeline: its role glyph and whether leaders overlapped."""

    glyph: str
    alarm: bool
    leads: bool = False  # the node was in a role that leads (drawn green, red in alarm)


class LabModel:
    def __init__(self) -> None:
        self.reset()
        self.unreachable: str | None = None
        self.notice: str | None = None
        self.malformed = 0  # records from the lab that could not be read (dropped)

    def reset(self) -> None:
        """Forget the lab (a new one is starting in the same lab dir)."""
        self.epoch = getattr(self, "epoch", -1) + 1  # widgets holding lab state start over
        self.has_status = False
        self.protocol = "?"
        self.seed: int | None = None
        self.mutate: str | None = None  # the named bug the lab runs with (labctl mutants)
        self.run_dir = ""
        self.supervisor_pid: int | None = None
        self.t0: float | None = None  # the lab's start, true time
        self.now = 0.0  # the latest true time seen (polls, batches, ticks)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.faults: list[dict[str, Any]] = []
        self.workload: dict[str, Any] | None = None  # the supervisor's workload spec, if any
        self.ops: dict[str, int] = {}  # history records so far: invoke / ok / fail / info
        self.processes: dict[str, dict[str, Any]] = {}
        self.rules: dict[tuple[str, str], Rule] = {}
        self.link_totals: dict[tuple[str, str], tuple[int, ...]] = {}
        self.link_rates: dict[tuple[str, str], tuple[float, float]] = {}  # (sent/s, dropped/s)
        self._links_t: float | None = None
        # A real system's peer links (etcd: its TCP traffic through the lab's fault proxy,
        # `peer_links` in status): (bytes, chunks, held, connections) totals, and per
        # second (bytes, held chunks). Its members talk to each other past the router.
        self.peer_totals: dict[tuple[str, str], tuple[int, ...]] = {}
        self.peer_rates: dict[tuple[str, str], tuple[float, float]] = {}
        self._peer_t: float | None = None
        self.usage: dict[str, tuple[float, float]] = {}
        self.events: deque[EventLine] = deque(maxlen=EVENTS)
        # The protocol's roles, columns and words (PBFT: primary, view), as the lab's
        # status documents carry them.
        self.display: Display = DEFAULT_DISPLAY
        self.words = ("leader", "term")
        self.event_seq = 0
        self.violations = 0
        self.lease_len: dict[str, float] = {}
        self.throughput: deque[float] = deque(maxlen=SERIES)
        self.latency: deque[float] = deque(maxlen=SERIES)
        self.latencies: deque[float] = deque(maxlen=2000)  # ms of recent acknowledged ops
        self.timeline: dict[str, deque[Sample]] = {}
        self._bucket: float | None = None  # start of the open one-second bucket
        self._bucket_index: dict[str, int] = {}  # applied index per node when the bucket opened
        self._bucket_latencies: list[float] = []
        self._invokes: dict[str, float] = {}
        self._commit_note_t = 0.0
        self._commit_noted: dict[str, Any] = {}
        self.received = 0
        # Per-area change counters: a panel re-renders only when its area moved. They keep
        # counting across a reset so a panel never mistakes a new lab for one it has shown.
        old = getattr(self, "changes", {})
        self.changes = {a: old.get(a, 0) + 1 for a in AREAS}

    # -- derived ---------------------------------------------------------------------------

    @property
    def order(self) -> list[str]:
        return list(self.nodes)

    @property
    def leaders(self) -> list[str]:
        return [
            n
            for n, s in self.nodes.items()
            if self.display.leads(s.get("role")) and s.get("state") != "stopped"
        ]

    @property
    def leaderless(self) -> bool:
        """A protocol without leaders (EPaxos: no role it declares leads), with a replica up."""
        roles = [s.get("role") for s in self.nodes.values() if s.get("state") != "stopped"]
        return bool(roles) and self.display.leaderless

    @property
    def split_brain(self) -> bool:
        return len(self.leaders) > 1

    @property
    def endpoints(self) -> list[str]:
        """The links matrix's rows and columns: replicas, then the broker."""
        return [*self.nodes, "broker"]

    def uptime(self) -> float | None:
        return None if self.t0 is None else max(0.0, self.now - self.t0)

    def paused_left(self, node: str) -> float | None:
        until = self.nodes.get(node, {}).get("paused_until")
        return None if until is None else max(0.0, until - self.now)

    def lease_left(self, node: str) -> float | None:
        expiry = self.nodes.get(node, {}).get("lease_true")
        return None if expiry is None else max(0.0, expiry - self.now)

    # -- status polls ----------------------------------------------------------------------

    def apply_status(self, doc: dict[str, Any], now: float) -> bool:
        """Fold one `status` document; True when it is a different lab than before."""
        for n in doc.get("nodes", []):  # all checked before anything changes
            checked(n)
        if not isinstance(doc.get("uptime", 0.0), _NUMBER):
            raise ValueError(f"uptime = {doc.get('uptime')!r}")
        display = Display.of_status(doc)  # ValueError: refused whole, like a bad field
        pid = doc.get("supervisor_pid")
        new_lab = self.supervisor_pid is not None and pid != self.supervisor_pid
        if new_lab:
            self.reset()
        self._tick_clock(now)
        self.unreachable = None
        self.has_status = True
        self.supervisor_pid = pid
        self.protocol = str(doc.get("protocol", "?"))
        self.display = display
        self.words = (display.leader_word, display.term_word)
        self.seed = doc.get("seed")
        mutate = doc.get("mutate")
        self.mutate = mutate if isinstance(mutate, str) and mutate else None
        self.run_dir = str(doc.get("run_dir", ""))
        if self.t0 is None and doc.get("uptime") is not None:
            self.t0 = now - float(doc["uptime"])
        nodes: dict[str, dict[str, Any]] = {}
        for n in doc.get("nodes", []):
            node = dict(n)
            left = node.get("paused_for")
            node["paused_until"] = now + left if left is not None else None
            node["lease_true"] = node.get("lease_expiry")
            nodes[str(n["id"])] = node
            self._note_lease(str(n["id"]), node["lease_true"])
        # Panels re-render only for what moved: a poll every half second mostly changes nothing
        # but the nodes' numbers.
        if list(nodes) != list(self.nodes):
            self.changed("links", "charts")
        if _who(nodes) != _who(self.nodes):
            self.changed("roles")
        self.nodes = nodes
        for n in nodes:
            self.timeline.setdefault(n, deque(maxlen=SERIES))
        faults = list(doc.get("faults") or [])
        if faults != self.faults:
            self.faults = faults
            self.rules = link_rules(faults)
            self.changed("faults", "links")
        self.processes = dict(doc.get("processes") or {})
        # The supervisor keeps its last workload spec after `stop`: the workload runs while
        # one of its client processes does.
        workload = doc.get("workload")
        clients = [p for p in self.processes.values()
                   if isinstance(p, dict) and p.get("kind") == "client"]  # fmt: skip
        running = any(p.get("state") in ("running", "paused") for p in clients)
        self.workload = dict(workload) if isinstance(workload, dict) and running else None
        ops = doc.get("ops")
        self.ops = {str(k): int(v) for k, v in ops.items()} if isinstance(ops, dict) else {}
        if not self.link_totals and isinstance(doc.get("router"), dict):
            self._fold_link_totals(doc["router"])
        if isinstance(doc.get("peer_links"), list):
            self.apply_peer_links(doc["peer_links"], now)
        self.changed("nodes")
        return new_lab

    def changed(self, *areas: str) -> None:
        for a in areas:
            self.changes[a] += 1

    def apply_usage(self, usage: dict[str, tuple[float, float]]) -> None:
        if usage != self.usage:
            self.usage = dict(usage)
            self.changed("nodes")

    def set_unreachable(self, reason: str) -> None:
        if self.unreachable != reason:
            self.unreachable = reason
            self.changed("nodes")

    # -- telemetry -------------------------------------------------------------------------

    def apply_node_status(self, node: str, s: dict[str, Any]) -> None:
        checked(s)
        cur = self.nodes.get(node)
        if cur is None:
            # Telemetry can come before the first status answer: start the row from it.
            cur = self.nodes[node] = {"id": node, "state": "running"}
            self.timeline.setdefault(node, deque(maxlen=SERIES))
        elif cur.get("state") == "stopped":
            return  # a dying node's last words must not revive it in the table
        before = (cur.get("role"), cur.get("leader"), cur.get("term"))
        cur.update({k: v for k, v in s.items() if k not in ("t", "src", "kind", "lease_expiry")})
        cur["lease_true"] = s.get("lease_expiry_true")
        self._note_lease(node, cur["lease_true"])
        self.changed("nodes")
        if (cur.get("role"), cur.get("leader"), cur.get("term")) != before:
            self.changed("roles")

    def apply_links(self, data: dict[str, Any], t: float) -> None:
        """Fold a router.links report (cumulative counters) into totals and per-second rates."""
        prev, prev_t = self.link_totals, self._links_t
        self._fold_link_totals(data)
        if prev_t is not None and t > prev_t:
            dt = t - prev_t
            rates = {}
            for key, tot in self.link_totals.items():
                old = prev.get(key, (0, 0, 0, 0, 0))
                if tot[0] < old[0]:  # counters went back: a new router
                    old = (0, 0, 0, 0, 0)
                rates[key] = ((tot[0] - old[0]) / dt, (tot[2] - old[2]) / dt)
            self.link_rates = rates
        self._links_t = t
        self.changed("links")

    def apply_peer_links(self, rows: list[Any], t: float) -> None:
        """Fold the TCP fault proxy's rows [src, dst, bytes, chunks, held, connections]
        (cumulative) into totals and per-second rates (bytes, held chunks)."""
        totals: dict[tuple[str, str], tuple[int, ...]] = {}
        for row in rows:
            try:
                src, dst, *counts = row
                totals[(str(src), str(dst))] = tuple(int(c) for c in counts[:4])
            except (TypeError, ValueError):
                continue  # a malformed row: skip it, keep the rest
        prev, prev_t = self.peer_totals, self._peer_t
        if prev_t is not None and t > prev_t:
            rates = {}
            for key, tot in totals.items():
                old = prev.get(key, (0, 0, 0, 0))
                if len(tot) < 3 or len(old) < 3 or tot[0] < old[0]:  # a new proxy
                    old = (0, 0, 0, 0)
                rates[key] = ((tot[0] - old[0]) / (t - prev_t), (tot[2] - old[2]) / (t - prev_t))
            self.peer_rates = rates
        if totals != prev:
            self.changed("links")
        self.peer_totals, self._peer_t = totals, t

    def _fold_link_totals(self, data: dict[str, Any]) -> None:
        totals = dict(self.link_totals)
        for row in data.get("links") or []:
            try:
                src, dst, *counts = row
                totals[(str(src), str(dst))] = tuple(int(c) for c in counts[:5])
            except (TypeError, ValueError):
                continue  # a malformed row from another process: skip it, keep the rest
        self.link_totals = totals

    def apply_event(self, event: dict[str, Any]) -> None:
        if not isinstance(event.get("t", 0.0), _NUMBER) or not isinstance(
            event.get("term", 0), (int, type(None))
        ):
            raise ValueError(f"malformed event {event!r}")
        kind = event.get("kind")
        src = str(event.get("src", ""))
        node = self.nodes.get(src)
        # Role changes land in the table at once, before the next status report.
        if node is not None and node.get("state") != "stopped":
            role = self.display.role_after(event)
            if role is not None and kind == "became_leader":
                node.update(role=role, leader=src, term=event.get("term", node.get("term")))
            elif role is not None and kind != "became_follower":
                node["role"] = role
        target = self.nodes.get(str(event.get("node")))
        if target is not None:
            self._fold_process_event(kind, event, target)
        if node is not None or target is not None:
            self.changed("nodes", "roles")
        if eventtext.is_violation(event):
            self.violations += 1
        t = float(event.get("t", self.now))
        if kind == "became_candidate":
            self._election(t, src, bool(event.get("pre_vote")), event.get("term"))
            return
        line = eventtext.describe(event, self.words)
        if line is not None:
            self.add_line(t, *line)

    def _election(self, t: float, src: str, pre_vote: bool, term: Any) -> None:
        """One more election attempt by `src`: folded into its last election line when
        only other election lines came after it (a cut-off follower's every 200 ms)."""
        recent = list(self.events)[-FOLD_WINDOW:]
        for line in reversed(recent):
            if line.fold is None:
                break  # a fault, a heal, a leader since: a new line tells the new story
            if line.fold[:2] == (src, pre_vote):
                count, first = line.fold[2] + 1, line.fold[3]
                self.events.remove(line)
                text = eventtext.election(src, pre_vote, count, first, term)
                self.event_seq += 1
                fold = (src, pre_vote, count, first, term)
                self.events.append(EventLine(self.event_seq, t, text, "dim", fold, line.seq))
                return
        self.event_seq += 1
        text = eventtext.election(src, pre_vote, 1, term, term)
        fold = (src, pre_vote, 1, term, term)
        self.events.append(EventLine(self.event_seq, t, text, "dim", fold))

    @staticmethod
    def _fold_process_event(kind: Any, event: dict[str, Any], node: dict[str, Any]) -> None:
        """Process faults change a node's state now; the next status poll confirms it."""
        fault = event.get("fault")
        if kind == "process.exit" or (kind == "fault" and fault == "kill"):
            node.update(state="stopped", role="down", pid=None)
        elif kind == "fault" and fault == "pause":
            node.update(state="paused", paused_until=None)
        elif (kind == "fault" and fault in ("resume", "restart")) or kind == "fault.healed":
            node.update(state="running", paused_until=None)

    def add_line(self, t: float, text: str, style: str = "") -> None:
        self.event_seq += 1
        self.events.append(EventLine(self.event_seq, t, text, style))

    def apply_history(self, records: list[dict[str, Any]]) -> None:
        """Latency from Jepsen-style history records: invoke, then ok / fail / info."""
        for r in records:
            rid, kind, t = r.get("request_id"), r.get("type"), r.get("t")
            if not isinstance(rid, str) or not isinstance(t, (int, float)):
                continue
            if kind == "invoke":
                self._invokes[rid] = float(t)
                if len(self._invokes) > 10000:  # invokes that never completed
                    self._invokes.pop(next(iter(self._invokes)))
            elif kind in ("ok", "fail", "info"):
                start = self._invokes.pop(rid, None)
                if kind == "ok" and start is not None:
                    ms = (float(t) - start) * 1000.0
                    self.latencies.append(ms)
                    self._bucket_latencies.append(ms)

    # -- time ------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move the model's clock: close finished one-second buckets of the charts."""
        self._tick_clock(now)
        # Buckets start on whole seconds, so where they fall does not depend on which of the
        # tick or the first batch happened to come first.
        if self._bucket is None:
            self._bucket = float(math.floor(now))
            return
        if now - self._bucket > SERIES:  # asleep (a suspended laptop): do not replay hours
            self._bucket = float(math.floor(now)) - 1.0
        closed = False
        while now - self._bucket >= 1.0:
            self._close_bucket()
            self._bucket += 1.0
            closed = True
        if closed:
            self._maybe_note_commits()
            self.changed("charts")

    def _tick_clock(self, now: float) -> None:
        self.now = max(self.now, now)

    def _close_bucket(self) -> None:
        # Every replica applies every entry, so the cluster's rate is the fastest replica's.
        index = {n: int(s.get("applied_index") or 0) for n, s in self.nodes.items()}
        moved = [i - self._bucket_index[n] for n, i in index.items() if n in self._bucket_index]
        self.throughput.append(float(max([0, *moved])))  # a restarted node's index goes back
        self._bucket_index = index
        lat = self._bucket_latencies
        self.latency.append(statistics.median(lat) if lat else 0.0)
        self._bucket_latencies = []
        alarm = self.split_brain
        for n, line in self.timeline.items():
            glyph = self._glyph(n)
            leads = n in self.leaders and glyph not in (PAUSED_GLYPH, DOWN_GLYPH)
            line.append(Sample(glyph, alarm and n in self.leaders, leads))

    def _glyph(self, node: str) -> str:
        s = self.nodes.get(node)
        if s is None or s.get("state") == "stopped":
            return DOWN_GLYPH
        if s.get("state") == "paused":
            return PAUSED_GLYPH
        role = self.display.role(s.get("role"))
        if role is None:
            return " "  # a role the protocol never declared
        if role.leads and self.lease_left(node):
            return LEASE_GLYPH
        return role.glyph

    def _maybe_note_commits(self) -> None:
        """Commits, sampled: one line every few seconds naming each index that moved."""
        if self.now - self._commit_note_t < COMMIT_NOTE_EVERY:
            return
        moved = {
            n: s.get("commit_index")
            for n, s in self.nodes.items()
            if s.get("commit_index") and s.get("commit_index") != self._commit_noted.get(n)
        }
        if moved:
            self._commit_note_t = self.now
            self._commit_noted.update(moved)
            self.add_line(self.now, "commit " + " · ".join(f"{n} {i}" for n, i in moved.items()))

    def _note_lease(self, node: str, expiry: float | None) -> None:
        # A lease's length is not in the status; the longest remaining time seen scales the bar.
        if expiry is not None:
            left = expiry - self.now
            if left > self.lease_len.get(node, 0.0):
                self.lease_len[node] = left

    # -- summaries for widgets ---------------------------------------------------------------

    def latency_summary(self) -> tuple[float, float] | None:
        if not self.latencies:
            return None
        xs = sorted(self.latencies)
        return xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))]
