"""The supervisor's intake: every telemetry message, and where it goes.

What the lab's processes report (node.ready, node.status, router.links, applied batches,
history, events) arrives on the supervisor's PULL socket, is decoded as data
(labctl/intake.py), and goes on to the run record (events.jsonl, history.jsonl), the live
checkers, and the PUB socket dashboards subscribe to; violations the checkers find go
back into the same stream. The supervisor's own events (`emit`: faults, process exits)
take the same path. A mixin of `Supervisor` (labctl/supervisor.py), which owns the state.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import zmq

from labctl.checkers import CheckerSet, Violation
from labctl.intake import Rejected, decode_telemetry
from labctl.rundir import RunDir
from nodes.inbound import Drops
from nodes.process import encode, true_now
from protocols.base import events as ev

if TYPE_CHECKING:
    from labctl.etcd import EtcdNodes

LIN_CHECK_EVERY = 0.2  # seconds between live linearizability searches, at the fastest
_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq's flag enums cost on the hot path


class TelemetryMixin:
    # Provided by Supervisor.
    telemetry: zmq.Socket  # PULL: every child's PUSH
    pub: zmq.Socket  # PUB: republished telemetry, topics "<kind>.<src>"
    run: RunDir
    children: dict[str, Any]
    status: dict[str, dict[str, Any]]  # latest node.status per replica
    router_stats: dict[str, Any]
    router_links: dict[tuple[str, str], list[Any]]
    router_data: str | None
    router_control: str | None
    counters: dict[str, int]
    drops: Drops
    elections: int
    leaders_by_term: dict[int, set[str]]
    checkers: CheckerSet | None
    violations: list[dict[str, Any]]
    ops: dict[str, int]
    next_lin_check: float
    etcd: EtcdNodes | None  # a real system's members (labctl/etcd/), else None

    if TYPE_CHECKING:  # stubs only for the checker: a real one would shadow FaultsMixin's

        def _reapply_node_faults(self, node: str) -> None: ...

    def _drain_telemetry(self) -> None:
        for _ in range(10000):
            try:
                raw = self.telemetry.recv(_NOBLOCK)
            except zmq.Again:
                return
            try:
                src, kind, t, data = decode_telemetry(raw)
            except Rejected as e:
                self._reject(e)
                continue
            self.counters["telemetry"] += 1
            self._on_telemetry(src, kind, t, data)

    def _reject(self, e: Rejected) -> None:
        """A message from outside that does not fit: counted (malformed, and by kind in
        status and summary), logged once per kind, dropped."""
        self.counters["malformed"] += 1
        self.drops.drop(e.kind, e.detail)

    def _on_telemetry(self, src: str, kind: str, t: float, data: dict[str, Any]) -> None:
        if kind == "history":
            self._on_history(src, t, data)
            return
        if kind == "applied.batch":
            self._on_applied(src, t, data.entries, data.rows)
            return
        child = self.children.get(src)
        if kind == "router.ready":
            if src != "router" or child is None or child.state != "starting":
                self._reject(Rejected("unexpected_ready", f"router.ready from {src!r}"))
                return
            self.router_data, self.router_control = data["data"], data["control"]
            child.state, child.control = "running", data["control"]
        elif kind == "node.loaded":
            # At the start barrier (supervisor.py `_release_replicas`): loaded, waiting
            # for the release at its control socket (so one that names none is not loaded).
            if child and child.state == "starting" and data.get("control"):
                child.extra["loaded"], child.control = True, data.get("control")
        elif kind in ("node.ready", "broker.ready"):
            if child and child.state == "starting":
                child.state, child.control = "running", data.get("control")
                self._reapply_node_faults(src)
        elif kind == "node.status":
            self.status[src] = data
            if child is not None and child.state == "running":
                child.extra["status"] = True  # its loop runs: what a restart waits for
        elif kind == "proxy.links" and self.etcd is not None:
            self.etcd.links = data.get("links") or []  # peer bytes per link, for status
        elif kind == "router.links":
            # Each report holds the rows that moved (faults/router.py): keep the newest row
            # of every link, so status and the summary show the whole table.
            for row in data.get("links") or []:
                if isinstance(row, list) and len(row) >= 2:
                    self.router_links[(str(row[0]), str(row[1]))] = row
            self.router_stats = {**data, "links": list(self.router_links.values())}
        elif kind == ev.BECAME_LEADER:
            self.elections += 1
            term = data.get("term")
            if isinstance(term, int):
                self.leaders_by_term.setdefault(term, set()).add(src)
        record = {"t": t, "src": src, "kind": kind, **data}
        self.run.event(record)
        self._publish(kind, src, record)
        if self.checkers is not None and not self.checkers.finished and kind != "violation":
            self._report(self.checkers.on_event(record))

    def _on_applied(self, src: str, t: float, entries: Any, rows: Any) -> None:
        """A replica's batch of applied commands: one "applied" event each, in order (for
        the record and the checkers; dashboards read applied_index from node.status).
        `entries` are dicts (what a snapshot restore brought), `rows` lists of the fields
        events.APPLIED_ROW names (the commands applied, after them)."""
        if not isinstance(entries, list) or not isinstance(rows, list):
            self.counters["malformed"] += 1
            return
        fields = ev.APPLIED_ROW
        for row in rows:
            if isinstance(row, list) and len(fields) - 1 <= len(row) <= len(fields):
                entries.append(dict(zip(fields, row)))  # noqa: B905 - view is optional
            else:
                entries.append(None)  # counted as malformed below
        checking = self.checkers is not None and not self.checkers.finished
        if not checking:
            # Nobody reads the records here (benchmarks run without checkers): the lines
            # are written straight from the entries, without a record dict each.
            self.counters["malformed"] += self.run.applied_events(t, src, entries)
            return
        for entry in entries:
            if not isinstance(entry, dict):
                self.counters["malformed"] += 1
                continue
            record = {"t": t, "src": src, "kind": "applied", **entry}
            self.run.event(record)
            self._report(self.checkers.on_event(record))

    def _on_history(self, src: str, t: float, data: dict[str, Any]) -> None:
        self._history({"t": t, "process": src, **data})

    def _history(self, record: dict[str, Any]) -> None:
        """One history record, from a workload client's telemetry or `labctl client`
        through the control socket: into history.jsonl and to the live checkers alike."""
        src = str(record.get("process"))
        self.run.history(record)
        op_type = record.get("type")
        if op_type in self.ops:
            self.ops[op_type] += 1
        self._publish("history", src, record)
        if self.checkers is not None and not self.checkers.finished:
            self._report(self.checkers.on_history(record))

    def _check_linearizability(self, now: float) -> None:
        """The live linearizability search, paced by its own cost: every 200 ms while it is
        cheap, never more than a fifth of the supervisor's time as histories grow."""
        if self.checkers is None or self.checkers.finished:
            self.next_lin_check = now + 1.0
            return
        t0 = time.perf_counter()
        self._report(self.checkers.check_online())
        spent = time.perf_counter() - t0
        self.next_lin_check = true_now() + max(LIN_CHECK_EVERY, 4 * spent)

    def _publish(self, kind: str, src: str, record: dict[str, Any]) -> None:
        try:
            self.pub.send_multipart([f"{kind}.{src}".encode(), encode(record)], _NOBLOCK)
        except zmq.Again:
            pass

    def _report(self, found: list[Violation]) -> None:
        """A violation goes into the event stream (and so to dashboards) the moment the
        evidence completes it."""
        for v in found:
            doc = v.to_dict()
            self.violations.append(doc)
            self.emit("violation", violation=v.kind, at=v.t, nodes=v.nodes, detail=v.detail,
                      evidence=v.evidence)  # fmt: skip

    def emit(self, kind: str, **data: Any) -> None:
        """An event of the supervisor's own (faults, process exits) into the same stream."""
        self._on_telemetry("supervisor", kind, true_now(), data)
