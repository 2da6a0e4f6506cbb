"""The dashboard's picture of one lab: what every panel renders, folded from messages.

The app owns one `LabModel`; workers' messages (status polls, telemetry batches) are folded
into it and widgets read it on the refresh tick. Nothing here touches Textual, a socket or
the clock: time comes in as arguments (the lab's true time, the machine's monotonic clock),
which is what lets tests and snapshots feed a fake lab and get the same picture every time.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from tui import eventtext
from tui.linkrules import Rule, link_rules

SERIES = 240  # seconds of chart history kept (more than the widest terminal shows)
EVENTS = 1000  # event lines kept
COMMIT_NOTE_EVERY = 5.0  # seconds between two sampled "commits" lines
LEADER_ROLES = ("leader", "primary")


@dataclass(frozen=True)
class EventLine:
    seq: int
    t: float  # true time
    text: str
    style: str


@dataclass(frozen=True)
class Sample:
    """One second of one node's timeline: its role glyph and whether leaders overlapped."""

    glyph: str
    alarm: bool


class LabModel:
    def __init__(self) -> None:
        self.reset()
        self.unreachable: str | None = None
        self.notice: str | None = None

    def reset(self) -> None:
        """Forget the lab (a new one is starting in the same lab dir)."""
        self.epoch = getattr(self, "epoch", -1) + 1  # widgets holding lab state start over
        self.has_status = False
        self.protocol = "?"
        self.seed: int | None = None
        self.run_dir = ""
        self.supervisor_pid: int | None = None
        self.t0: float | None = None  # the lab's start, true time
        self.now = 0.0  # the latest true time seen (polls, batches, ticks)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.faults: list[dict[str, Any]] = []
        self.processes: dict[str, dict[str, Any]] = {}
        self.rules: dict[tuple[str, str], Rule] = {}
        self.link_totals: dict[tuple[str, str], tuple[int, ...]] = {}
        self.link_rates: dict[tuple[str, str], tuple[float, float]] = {}  # (sent/s, dropped/s)
        self._links_t: float | None = None
        self.usage: dict[str, tuple[float, float]] = {}
        self.events: deque[EventLine] = deque(maxlen=EVENTS)
        self.event_seq = 0
        self.violations = 0
        self.lease_len: dict[str, float] = {}
        self.throughput: deque[float] = deque(maxlen=SERIES)
        self.latency: deque[float] = deque(maxlen=SERIES)
        self.latencies: deque[float] = deque(maxlen=2000)  # ms of recent acknowledged ops
        self.timeline: dict[str, deque[Sample]] = {}
        self._bucket: float | None = None  # start of the open one-second bucket
        self._bucket_applied: dict[str, int] = {}
        self._bucket_latencies: list[float] = []
        self._invokes: dict[str, float] = {}
        self._commit_note_t = 0.0
        self._commit_noted: dict[str, Any] = {}
        self.received = 0
        self.version = 0  # bumped on every change; widgets re-render when it moves

    # -- derived ---------------------------------------------------------------------------

    @property
    def order(self) -> list[str]:
        return list(self.nodes)

    @property
    def leaders(self) -> list[str]:
        return [
            n
            for n, s in self.nodes.items()
            if s.get("role") in LEADER_ROLES and s.get("state") != "stopped"
        ]

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
        pid = doc.get("supervisor_pid")
        new_lab = self.supervisor_pid is not None and pid != self.supervisor_pid
        if new_lab:
            self.reset()
        self._tick_clock(now)
        self.unreachable = None
        self.has_status = True
        self.supervisor_pid = pid
        self.protocol = str(doc.get("protocol", "?"))
        self.seed = doc.get("seed")
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
        self.nodes = nodes
        for n in nodes:
            self.timeline.setdefault(n, deque(maxlen=SERIES))
        self.faults = list(doc.get("faults") or [])
        self.rules = link_rules(self.faults)
        self.processes = dict(doc.get("processes") or {})
        if not self.link_totals and isinstance(doc.get("router"), dict):
            self._fold_link_totals(doc["router"])
        self.version += 1
        return new_lab

    def apply_usage(self, usage: dict[str, tuple[float, float]]) -> None:
        self.usage = dict(usage)

    def set_unreachable(self, reason: str) -> None:
        if self.unreachable != reason:
            self.unreachable = reason
            self.version += 1

    # -- telemetry -------------------------------------------------------------------------

    def apply_node_status(self, node: str, s: dict[str, Any]) -> None:
        cur = self.nodes.get(node)
        if cur is None or cur.get("state") == "stopped":
            return  # a dying node's last words must not revive it in the table
        cur.update({k: v for k, v in s.items() if k not in ("t", "src", "kind", "lease_expiry")})
        cur["lease_true"] = s.get("lease_expiry_true")
        self._note_lease(node, cur["lease_true"])

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
        kind = event.get("kind")
        src = str(event.get("src", ""))
        node = self.nodes.get(src)
        # Role changes land in the table at once, before the next status report.
        if node is not None and node.get("state") != "stopped":
            if kind == "became_leader":
                node.update(role="leader", leader=src, term=event.get("term", node.get("term")))
            elif kind == "stepped_down":
                node["role"] = "follower"
            elif kind == "became_candidate":
                node["role"] = "candidate"
        if kind == "process.exit" and event.get("node") in self.nodes:
            self.nodes[event["node"]].update(state="stopped", role="down", pid=None)
        if eventtext.is_violation(event):
            self.violations += 1
        line = eventtext.describe(event)
        if line is not None:
            self.add_line(float(event.get("t", self.now)), *line)

    def add_line(self, t: float, text: str, style: str = "") -> None:
        self.event_seq += 1
        self.events.append(EventLine(self.event_seq, t, text, style))
        self.version += 1

    def apply_applied(self, counts: dict[str, int]) -> None:
        for node, n in counts.items():
            self._bucket_applied[node] = self._bucket_applied.get(node, 0) + n

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
        if self._bucket is None:
            self._bucket = now
            return
        if now - self._bucket > SERIES:  # asleep (a suspended laptop): do not replay hours
            self._bucket = now - 1.0
        closed = False
        while now - self._bucket >= 1.0:
            self._close_bucket()
            self._bucket += 1.0
            closed = True
        if closed:
            self._maybe_note_commits()
            self.version += 1

    def _tick_clock(self, now: float) -> None:
        self.now = max(self.now, now)

    def _close_bucket(self) -> None:
        # Every replica applies every entry, so the cluster's rate is the fastest replica's.
        self.throughput.append(float(max(self._bucket_applied.values(), default=0)))
        lat = self._bucket_latencies
        self.latency.append(statistics.median(lat) if lat else 0.0)
        self._bucket_applied, self._bucket_latencies = {}, []
        alarm = self.split_brain
        for n, line in self.timeline.items():
            line.append(Sample(self._glyph(n), alarm and n in self.leaders))

    def _glyph(self, node: str) -> str:
        s = self.nodes.get(node)
        if s is None or s.get("state") == "stopped":
            return "✕"
        if s.get("state") == "paused":
            return "‖"
        role = s.get("role")
        if role in LEADER_ROLES:
            lease = self.lease_left(node)
            return "█" if lease else "▆"
        if role == "candidate":
            return "░"
        return "·" if role == "follower" else " "

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
