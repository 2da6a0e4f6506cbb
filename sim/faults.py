"""Faults in the simulator: the lab's vocabulary (faults/model.py) with the lab's meaning.

What labctl/supervisor_faults.py does with signals, a router table and control sockets,
this does to the network and its nodes, at the step's virtual time:

- link faults: roles resolved when the step fires (faults/targets.py), the faults in force
  folded in order into directed link rules (faults/linkplan.py) as the router's table;
  like the router, a rule applies to a message when it is sent (a message already held
  in a delay leaves when due);
- pause: the node takes no input and its timers do not fire while true time runs on;
  what is sent to it waits (SIGSTOP); resume, or the end of `for`;
- kill: the node's process is gone (what was in flight to it is lost), what it wrote
  survives (SIGKILL leaves the page cache); with `power_loss` the machine goes down too:
  writes not yet fsynced are lost but for a prefix, and one during its fsync is torn;
  restart: a new protocol object from the records on its "disk", through `start`;
- clock: offset and drift of the node clock against true time (nodes/clock.py's rule);
- disk: fsync latency added to every fsync, a stall that blocks fsyncs until it is over;
  `corrupt` stops the nodes, damages the bytes of their logs (the records on their "disk",
  encoded as a replica's WAL holds them) with the lab's own `nodes.wal.damage`, and starts
  them again: each recovers as a replica does (sim/lab.py), repairing or refusing to start;
- byzantine: the protocol's own mode, re-applied after a restart, as the supervisor does.

A mixin of `SimLab` (sim/lab.py), which owns the network.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import msgspec

from faults.linkplan import link_table, split_healed
from faults.links import LinkRule
from faults.model import LINK_KINDS, Fault, FaultError, byzantine_problem, parse_fault
from faults.shapes import ShapeError, shape_links
from faults.targets import resolve
from nodes.wal import damage


class FaultsMixin:
    # Provided by SimLab / SimNet.
    ids: tuple[str, ...]
    nodes: dict[str, Any]
    wal_images: dict[str, bytes]
    rules: dict[tuple[str, str], Any]
    byzantine: dict[str, str]
    now: float
    status_touched: Callable[[str], None]  # what the node's status shows may have moved

    def init_faults(self, rng: random.Random) -> None:
        self.fault_rng = rng  # roles "random", "majority"...: the supervisor's own stream
        self.link_faults: list[tuple[int, Fault]] = []
        self.fault_ids = 0
        self.faults_applied = 0
        self.node_faults: dict[str, dict[str, Fault]] = {}  # node -> kind -> fault in force
        self.pause_ids: dict[str, int] = {}

    # -- one step ---------------------------------------------------------------------------

    def fire_step(self, index: int, spec: dict[str, Any]) -> None:
        """A scenario step: applied, or said why not (a role that resolves to nobody right
        now is part of the story, not a broken scenario), as `scenario run` prints."""
        try:
            applied = self.apply_fault(spec)
        except FaultError as e:
            self.sink.say(f"[{self.now:6.2f}s] step {index} ({spec.get('fault')}) not applied: {e}")
            return
        self.sink.say(f"[{self.now:6.2f}s] fault: {'; '.join(applied)}")

    def apply_fault(self, spec: dict[str, Any]) -> list[str]:
        """Carry out one fault; what it did, or FaultError saying why it cannot."""
        fault = parse_fault(spec)
        self.faults_applied += 1
        if fault.kind in LINK_KINDS:
            return [self._link_fault(fault)]
        if fault.kind == "heal":
            return [self._heal(fault)]
        nodes = self._resolve(fault.node.split(","), replicas_only=True)
        if fault.kind == "disk" and fault.corrupt:
            return self._corrupt_disks(fault, nodes)
        return [self._node_fault(fault, n) for n in nodes]

    def _status(self) -> dict[str, dict[str, Any]]:
        return {r: self.nodes[r].protocol.status() for r in self.ids
                if self.nodes[r].protocol is not None}  # fmt: skip

    def _resolve(self, names: Any, replicas_only: bool = False) -> list[str]:
        endpoints = set(self.ids)
        if not replicas_only:
            endpoints |= {"broker"} | {f"c{i}" for i in range(16)}
        return resolve(names, replicas=list(self.ids), endpoints=endpoints,
                       status=self._status(), rng=self.fault_rng,
                       display=self.display)  # fmt: skip

    # -- links ------------------------------------------------------------------------------

    def _link_fault(self, fault: Fault) -> str:
        if fault.kind == "isolate":
            node = self._resolve([fault.node])
            others = [r for r in self.ids if r not in node]
            fault = Fault(kind="partition", src=tuple(node), dst=tuple(others))
        elif fault.shape:
            node = self._resolve([fault.node], replicas_only=True)[0] if fault.node else None
            try:
                links = shape_links(fault.shape, list(self.ids), node)
            except ShapeError as e:
                raise FaultError(str(e)) from None
            fault = msgspec.structs.replace(fault, node=node or "", links=tuple(links))
        else:
            src, dst = self._resolve(fault.src), self._resolve(fault.dst)
            fault = msgspec.structs.replace(fault, src=tuple(src), dst=tuple(dst))
        self.fault_ids += 1
        self.link_faults.append((self.fault_ids, fault))
        self._push_links()
        self.emit("fault", fault=fault.kind, describe=fault.describe(), id=self.fault_ids,
                  **{"from": list(fault.src), "to": list(fault.dst)})  # fmt: skip
        return fault.describe()

    def _heal(self, fault: Fault) -> str:
        src = set(self._resolve(fault.src)) if fault.src else None
        dst = set(self._resolve(fault.dst)) if fault.dst else None
        healed, self.link_faults = split_healed(self.link_faults, src, dst)
        self._push_links()
        self.emit("fault.healed", fault="heal", healed=[f.describe() for f in healed])
        return f"heal ({len(healed)} link faults removed)"

    def _push_links(self) -> None:
        table = link_table([f for _, f in self.link_faults])
        self.rules = {(r["src"], r["dst"]): LinkRule(**r["rule"]) for r in table}

    # -- nodes ------------------------------------------------------------------------------

    def _state(self, node: str) -> str:
        n = self.nodes[node]
        if n.protocol is None:
            return "stopped"
        return "paused" if n.paused_until > self.now else "running"

    def _node_fault(self, fault: Fault, node: str) -> str:
        kind, state = fault.kind, self._state(node)
        if kind == "pause":
            if state != "running":
                raise FaultError(f"{node} is {state}, not running")
            self.pause(node, fault.duration or math.inf)
            self.fault_ids += 1
            self.pause_ids[node] = self.fault_ids
            if fault.duration:
                self.at(self.now + fault.duration,
                        lambda pid=self.fault_ids: self._pause_over(node, pid))  # fmt: skip
        elif kind == "resume":
            if state != "paused":
                raise FaultError(f"{node} is {state}, not paused")
            self.resume(node)
            self.pause_ids.pop(node, None)
        elif kind == "kill":
            if state == "stopped":
                raise FaultError(f"{node} is already stopped")
            self._kill_node(node, bool(getattr(fault, "power_loss", False)))
        elif kind == "restart":
            if state != "stopped":
                self._kill_node(node)
            if not self._start(node):
                raise FaultError(f"{node} exited during start (see its wal_corrupt event)")
        else:  # clock, disk, byzantine: faults the node itself carries out
            problem = byzantine_problem(self.plan.protocol, fault.mode) if kind == "byzantine" \
                else None  # fmt: skip
            if problem:
                raise FaultError(problem)
            if state != "running":
                raise FaultError(f"{node} is {state}: it cannot take a {kind} fault now")
            n = self.nodes[node]
            if kind == "clock":
                self.set_clock(node, fault.offset, fault.drift)
            elif kind == "disk":
                if fault.fsync is not None:
                    n.fsync_latency = fault.fsync
                if fault.stall is not None:
                    n.stall_until = self.now + fault.stall
            else:
                honest = fault.mode in ("", "honest")
                self.set_byzantine(node, None if honest else fault.mode)
            self.status_touched(node)  # as the replica marks its status after the fault
            kinds = self.node_faults.setdefault(node, {})
            kinds[kind] = msgspec.structs.replace(fault, node=node)
            if _is_neutral(fault):
                kinds.pop(kind)
        describe = msgspec.structs.replace(fault, node=node).describe()
        extra = {"mode": fault.mode or "honest"} if kind == "byzantine" else {}
        self.emit("fault", fault=kind, node=node, describe=describe, **extra)
        return describe

    def _start(self, node: str) -> bool:
        """Start a stopped node again, with the faults it carries; False if it refused to
        (a corrupt WAL its protocol cannot repair)."""
        self.pause_ids.pop(node, None)
        self.nodes[node].stall_until = 0.0  # a past stall is over; the slow disk is not
        self.restart(node)
        if not self.nodes[node].alive:
            return False
        mode = self.node_faults.get(node, {}).get("byzantine")
        if mode is not None:
            self.set_byzantine(node, mode.mode)
        return True

    def _corrupt_disks(self, fault: Fault, nodes: list[str]) -> list[str]:
        """As the supervisor does: stop the nodes (a kill: what they wrote stays), damage
        every log before any restarts (disks that fail together), start them again."""
        for n in nodes:
            if self._state(n) != "stopped":
                self._kill_node(n)
        done = {}
        for n in nodes:
            image, what = damage(self.wal_image(n), fault.corrupt, self.fault_rng)
            self.wal_images[n] = image  # read back by the node's next start
            done[n] = f"wal.log: {what}"
        applied = []
        for n in nodes:
            started = self._start(n)
            then = "restarted on it" if started else "refused to start (see its wal_corrupt event)"
            outcome = f"{n}: {done[n]}; {then}"
            describe = msgspec.structs.replace(fault, node=n).describe()
            self.emit("fault", fault="disk", node=n, describe=describe, corrupt=fault.corrupt,
                      outcome=outcome)  # fmt: skip
            applied.append(outcome)
        return applied

    def _kill_node(self, node: str, power_loss: bool = False) -> None:
        self.pause_ids.pop(node, None)
        self.crash(node, power_loss=power_loss)
        self.emit("process.exit", node=node, code=-9)

    def _pause_over(self, node: str, pause_id: int) -> None:
        if self.pause_ids.get(node) != pause_id:
            return  # resumed, killed or paused again since
        self.pause_ids.pop(node)
        self.resume(node)
        self.emit("fault.healed", fault=f"pause {node}", node=node)


def _is_neutral(fault: Fault) -> bool:
    if fault.kind == "clock":
        return not fault.offset and not fault.drift
    if fault.kind == "byzantine":
        return fault.mode in ("", "honest")
    return not fault.fsync and not fault.stall
