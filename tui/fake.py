"""A fake lab for tests, snapshots and demos: the `Source` shape from canned data.

`demo_story(n)` scripts the incident the lab exists to show, on a fixed clock: r0 leads
term 1 while orders flow, at +10 s a partition cuts it off, the followers self-promote
(three leaders in term 1, a split-brain violation), at +14 s r2 is paused, at +18 s the
link to the broker slows down. `FakeSource` replays it one second per step, encoded on
the wire exactly as the supervisor publishes it, so the same decoding and folding code runs
as with a real lab; its clock only moves as steps are delivered, so the picture at the end
is the same on every run, however the UI's timers interleave.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from pathlib import Path
from typing import Any

import msgspec

from faults.model import FaultError, parse_fault
from labctl.errors import LabError
from protocols import BUILTINS, SCENARIO_DEFAULT

# The story's lab runs the seed's protocol (naive): the default roles, and a split brain
# is what it does; swapping offers the built-ins, as a real lab with no plugin does.
DEMO_PROTOCOL = SCENARIO_DEFAULT

T0 = 1000.0  # the fake lab's start, in its true time
_encoder = msgspec.msgpack.Encoder()

Step = list[dict[str, Any]]  # the events of one second, each {"t", "src", "kind", ...}


def _status(role: str, term: int, leader: str | None, index: int) -> dict[str, Any]:
    return {
        "role": role,
        "term": term,
        "leader": leader,
        "commit_index": index,
        "applied_index": index,
        "log": index,
        "lease_expiry": None,
        "lease_expiry_true": None,
        "clock_offset": 0.0,
        "clock_drift": 0.0,
        "fsync_ms": 0.4,
    }


def demo_story(n: int = 3, seconds: int = 20) -> tuple[dict[str, Any], list[Step]]:
    """(the status document at the start, one list of events per second)."""
    ids = [f"r{i}" for i in range(n)]
    index = dict.fromkeys(ids, 0)
    roles = {r: ("leader" if r == "r0" else "follower") for r in ids}
    leader_of = dict.fromkeys(ids, "r0")
    paused: set[str] = set()
    cut = False
    links: dict[tuple[str, str], list[int]] = {}
    steps: list[Step] = []
    req = 0
    for k in range(seconds):
        t = T0 + k
        ev: Step = []
        if k == 10:
            cut = True
            # As the supervisor publishes it: the fault's "src" list overrides the record's.
            ev.append({"t": t + 0.01, "src": ["r0"], "kind": "fault", "fault": "partition",
                       "describe": "partition r0 <-> " + ",".join(ids[1:]), "id": 1,
                       "dst": ids[1:]})  # fmt: skip
            for r in ids[1:]:
                roles[r], leader_of[r] = "leader", r
                ev.append({"t": t + 0.35, "src": r, "kind": "became_leader", "term": 1,
                           "how": "self-promoted"})  # fmt: skip
            ev.append({"t": t + 0.36, "src": "supervisor", "kind": "violation",
                       "violation": "split-brain", "nodes": ids,
                       "detail": f"{n} leaders in term 1: {', '.join(ids)}"})  # fmt: skip
        if k == 14 and n > 2:
            paused.add("r2")
            ev.append({"t": t + 0.02, "src": "supervisor", "kind": "fault", "fault": "pause",
                       "node": "r2", "describe": "pause r2 for 10s"})  # fmt: skip
        if k == 18:
            ev.append({"t": t + 0.03, "src": "supervisor", "kind": "fault", "fault": "delay",
                       "describe": "delay r0 -> broker 30ms", "id": 2})  # fmt: skip
        # Orders: 30/s to the one leader; after the cut each leader takes its own clients'.
        writers = [r for r in ids if roles[r] == "leader" and r not in paused]
        for w in writers:
            rate = 30 if not cut else (20 if w == "r0" else 10)
            appliers = [w] if cut else [r for r in ids if r not in paused]  # their index moves
            for i in range(rate):
                req += 1
                rid = f"c0:{req:06d}"
                ts = t + (i + 0.5) / rate
                ms = 1.2 + 0.4 * ((k + i) % 5) + (3.0 if cut else 0.0)
                ev.append({"t": ts, "src": "supervisor", "kind": "history", "type": "invoke",
                           "request_id": rid})  # fmt: skip
                ev.append({"t": ts + ms / 1000, "src": "supervisor", "kind": "history",
                           "type": "ok", "request_id": rid})  # fmt: skip
                for a in appliers:
                    index[a] += 1
        for r in ids:
            if r not in paused:
                st = _status(roles[r], 1, leader_of[r], index[r])
                ev.append({"t": t + 0.9, "src": r, "kind": "node.status", **st})
        for s in [*ids, "broker"]:
            for d in [*ids, "broker"]:
                if s == d or (s == "broker" and d != "r0") or (d == "broker" and s != "r0"):
                    continue
                c = links.setdefault((s, d), [0, 0, 0, 0, 0])
                sent = 20 if "broker" not in (s, d) else 30
                dropped = sent if cut and "r0" in (s, d) and "broker" not in (s, d) else 0
                c[0] += sent
                c[1] += sent - dropped
                c[2] += dropped
        ev.append({"t": t + 0.95, "src": "router", "kind": "router.links",
                   "links": [[s, d, *c] for (s, d), c in links.items()]})  # fmt: skip
        ev.sort(key=lambda e: e["t"])
        steps.append(ev)
    nodes = []
    for i, r in enumerate(ids):
        node = {
            "id": r,
            "pid": 4100 + i,
            "state": "paused" if r in paused else "running",
            **_status(roles[r], 1, leader_of[r], index[r]),
            "paused_for": 3.5 if r in paused else None,
            "starts": 1,
        }
        node["lease_expiry"] = None
        nodes.append(node)
    faults = [
        {"id": 1, "fault": "partition", "describe": "partition r0 <-> " + ",".join(ids[1:]),
         "heals_with": "heal"},
        {"id": 2, "fault": "delay", "describe": "delay r0 -> broker 30ms", "heals_with": "heal"},
    ]  # fmt: skip
    if n > 2:
        faults.append({"fault": "pause", "node": "r2", "describe": "pause r2 (3.5s left)",
                       "heals_with": "resume, or the timer"})  # fmt: skip
    procs = {
        "router": {"pid": 4090, "state": "running", "kind": "router", "control": None},
        "broker": {"pid": 4091, "state": "running", "kind": "broker", "control": None},
    }
    for node in nodes:
        procs[node["id"]] = {"pid": node["pid"], "state": node["state"], "kind": "replica",
                             "control": None}  # fmt: skip
    doc = {
        "supervisor_pid": 4000,
        "protocol": DEMO_PROTOCOL,
        "seed": 42,
        "run_dir": f"/tmp/lab/runs/20260101-000000-lab-{DEMO_PROTOCOL}",
        "uptime": 0.0,
        "nodes": nodes,
        "leaders": [r for r in ids if roles[r] == "leader"],
        "faults": faults,
        "processes": procs,
        "router": {},
        "counters": {},
    }
    return doc, steps


def calm_doc(n: int = 3) -> dict[str, Any]:
    """A status document of a healthy lab: r0 leads term 1, no fault in force."""
    doc, _ = demo_story(n, seconds=0)
    for i, node in enumerate(doc["nodes"]):
        node.update(state="running", paused_for=None, **_status(
            "leader" if i == 0 else "follower", 1, "r0", 0))  # fmt: skip
    doc["leaders"], doc["faults"] = ["r0"], []
    for p in doc["processes"].values():
        p["state"] = "running"
    return doc


class FakeFeed:
    def __init__(self, source: FakeSource) -> None:
        self.source = source

    async def receive(self, timeout: float) -> tuple[list[tuple[bytes, bytes]], bool]:
        src = self.source
        if src.pending:
            step = src.pending.pop(0)
            if step:
                src.clock = max(src.clock, max(e["t"] for e in step))
            frames = [(f"{e['kind']}.{e['src']}".encode(), _encoder.encode(e)) for e in step]
            if not src.pending:
                src.delivered.set()
            return frames, True
        await asyncio.sleep(timeout)
        return [], False

    def close(self) -> None:
        pass


class FakeSource:
    """A `Source` that replays a story and records the actions asked of it."""

    # One status poll, answered once the whole story has been delivered: the steps carry the
    # changes, the poll the final word (faults in force, pids, pause timers).
    poll_interval = None

    def __init__(
        self,
        doc: dict[str, Any],
        steps: list[Step] | None = None,
        usage: dict[str, tuple[float, float]] | None = None,
        protocols: list[str] | None = None,
        fail: dict[str, str] | None = None,
    ) -> None:
        self.lab_dir = Path("/tmp/fake-lab")
        self.doc = doc
        self.pending = list(steps or [])
        self.frames = sum(len(s) for s in self.pending)  # all the story's messages
        self.delivered = threading.Event()
        if not self.pending:
            self.delivered.set()
        self.clock = T0
        self._usage = usage if usage is not None else {
            n["id"]: (1.5 + i, 31.0 + i) for i, n in enumerate(doc["nodes"])
        }  # fmt: skip
        self._protocols = protocols or list(BUILTINS)
        self.fail = fail or {}  # action (fault kind, "order", "swap") -> LabError message
        self.calls: list[tuple[str, Any]] = []
        self._clients = 0

    @classmethod
    def demo(cls, n: int = 3, **kw: Any) -> FakeSource:
        doc, steps = demo_story(n)
        return cls(doc, steps, **kw)

    def now(self) -> float:
        return self.clock

    def status(self) -> dict[str, Any]:
        if "status" in self.fail:
            raise LabError(self.fail["status"])
        self.delivered.wait(10.0)
        doc = copy.deepcopy(self.doc)
        doc["uptime"] = self.clock - T0
        return doc

    def usage(self, doc: dict[str, Any]) -> dict[str, tuple[float, float]]:
        return dict(self._usage)

    def history(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    def feed(self) -> FakeFeed:
        return FakeFeed(self)

    def backlog(self) -> list[dict[str, Any]]:
        return []

    def _act(self, what: str, arg: Any) -> None:
        self.calls.append((what, arg))
        if what in self.fail:
            raise LabError(self.fail[what])

    def fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            f = parse_fault(spec)
        except FaultError as e:
            raise LabError(str(e)) from None
        self._act(f.kind, spec)
        return {"ok": True, "applied": [f.describe()]}

    def order(self, node: str, user: str, side: str, qty: int) -> dict[str, Any]:
        self._act("order", {"node": node, "user": user, "side": side, "qty": qty})
        return {"status": "ok", "node": node, "term": 1, "seq": 42, "ms": 1.4}

    def down(self) -> dict[str, Any]:
        self._act("down", None)
        return {"run_dir": self.doc["run_dir"]}

    def swap(self, protocol: str) -> dict[str, Any]:
        from labctl.session import keeps_mutation, swap_note

        self._act("swap", protocol)
        old = self.doc["run_dir"]
        was = self.doc.get("mutate")
        kept = keeps_mutation(was)
        self.doc = {**self.doc, "protocol": protocol, "run_dir": old + "-2", "mutate": kept}
        return {"old_run_dir": old, "new_run_dir": self.doc["run_dir"],
                "note": swap_note(was, kept)}  # fmt: skip

    def workload(self, action: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        self._act("workload", {"action": action, **({"spec": spec} if spec else {})})
        procs = {k: p for k, p in self.doc["processes"].items() if p.get("kind") != "client"}
        if action == "stop":  # the supervisor keeps the spec; its clients are gone
            self.doc = {**self.doc, "processes": procs}
            return {"stopped": self._clients}
        assert spec is not None
        ops = {"invoke": 120, "ok": 117, "fail": 1, "info": 2}
        for i in range(spec["clients"]):
            procs[f"c{i}"] = {"pid": 4200 + i, "state": "running", "kind": "client",
                              "control": None}  # fmt: skip
        self.doc = {**self.doc, "workload": dict(spec), "ops": ops, "processes": procs}
        self._clients = spec["clients"]
        return {"clients": spec["clients"]}

    def scenario(self, name: str, protocol: str, fresh: bool, attached: Any) -> dict[str, Any]:
        self._act("scenario", {"name": name, "protocol": protocol, "fresh": fresh})
        attached(str(self.lab_dir / "scenarios" / f"{name}-1"))
        summary = {
            "scenario": name, "protocol": protocol, "nodes": 3, "seed": 42, "verdict": "pass",
            "run_dir": self.doc["run_dir"] + f"-{name}",
            "violations": [{"kind": "split-brain", "t": 1.0, "nodes": ["r0", "r1"],
                            "detail": "2 leaders"}] * 2,
            "ops": {"invoke": 50, "ok": 48, "fail": 0, "info": 2},
        }  # fmt: skip
        restarted = None
        if fresh:
            restarted = self.doc["run_dir"] + "-fresh"
            self.doc = {**self.doc, "protocol": protocol, "run_dir": restarted}
        return {"summary": summary, "restarted": restarted, "error": None}

    def protocols(self) -> list[str]:
        return list(self._protocols)

    def dies_with_us(self) -> bool:
        return False
