"""The supervisor's fault handling: one fault of the vocabulary in, carried out.

Link faults are resolved to concrete endpoints, folded into the router's table and shipped
whole; process faults (pause, resume, kill, restart) are signals the supervisor sends
itself; clock and disk faults go to the node's control socket and are re-applied when the
node restarts. A mixin of `Supervisor` (labctl/supervisor.py), which owns the state.
"""

from __future__ import annotations

import heapq
from typing import Any

import msgspec

from faults.linkplan import link_table, split_healed
from faults.model import LINK_KINDS, Fault, FaultError, byzantine_problem, parse_fault
from faults.shapes import ShapeError, shape_links
from faults.targets import resolve
from nodes.process import error, ok, request, true_now
from nodes.wal import corrupt, cut_to_synced
from protocols.display import Display

NODE_TIMEOUT = 2.0  # a node control request (clock, disk) waits at most this long
PROCESS_KINDS = frozenset({"pause", "resume", "kill", "restart"})
SERVICES = ("router", "broker")  # processes process faults may target besides replicas


class StartupError(Exception):
    """A child did not become ready (at start, or when a fault restarts it)."""


class FaultsMixin:
    # Provided by Supervisor.
    children: dict[str, Any]
    replicas: list[str]
    display: Display  # the protocol's roles: which one a fault's "leader" names
    status: dict[str, dict[str, Any]]
    link_faults: list[tuple[int, Fault]]
    node_faults: dict[str, dict[str, Fault]]
    timers: list[tuple[float, int, str, str]]
    counters: dict[str, int]
    etcd: Any  # EtcdNodes (labctl/etcd/) or None

    def faults_in_force(self) -> list[dict[str, Any]]:
        out = [
            {"id": fid, "fault": f.kind, "describe": f.describe(), "heals_with": f.heals_with,
             "src": list(f.src), "dst": list(f.dst), "oneway": f.oneway, "delay": f.delay,
             "jitter": f.jitter, "p": f.p, "links": [list(x) for x in f.links]}
            for fid, f in self.link_faults
        ]  # fmt: skip
        now = true_now()
        for c in self.children.values():
            if c.state == "paused":
                left = f" ({c.paused_until - now:.1f}s left)" if c.paused_until else ""
                heals = f"resume {c.name}" + (", or the timer" if c.paused_until else "")
                out.append({"fault": "pause", "node": c.name, "describe": f"pause {c.name}{left}",
                            "heals_with": heals})  # fmt: skip
            elif c.state == "stopped" and c.kind in ("replica", "router", "broker"):
                what = {"router": ": no message is delivered", "broker": ": no side effect "
                        "is recorded"}.get(c.kind, "")  # fmt: skip
                out.append({"fault": "kill", "node": c.name, "describe": f"{c.name} is down{what}",
                            "heals_with": f"restart {c.name}"})  # fmt: skip
        for node, kinds in self.node_faults.items():
            for f in kinds.values():
                out.append({"fault": f.kind, "node": node, "describe": f.describe(),
                            "heals_with": f.heals_with})  # fmt: skip
        return out

    # -- faults --------------------------------------------------------------------------

    def apply_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        fault = parse_fault(spec)
        self.counters["faults"] += 1
        if fault.kind in LINK_KINDS:
            return self._link_fault(fault)
        if fault.kind == "heal":
            return self._heal(fault)
        # The router and the broker are processes too: they can be paused, killed and
        # restarted, but they have no clock, disk or protocol of their own to fault.
        extra = SERVICES if fault.kind in PROCESS_KINDS else ()
        nodes = self._resolve(fault.node.split(","), replicas_only=True, also=extra)
        if fault.kind == "disk" and fault.corrupt:
            return self._corrupt_wals(fault, nodes)
        results = [self._node_fault(fault, n) for n in nodes]
        failed = [r for r in results if not r.get("ok")]
        if failed:
            return failed[0]
        outcomes = [r["outcome"] for r in results if r.get("outcome")]
        return ok(applied=[r["describe"] for r in results], nodes=nodes,
                  **({"outcome": "; ".join(outcomes)} if outcomes else {}))  # fmt: skip

    def _resolve(
        self, names: Any, replicas_only: bool = False, also: tuple[str, ...] = ()
    ) -> list[str]:
        endpoints = set(self.replicas) if replicas_only else self.endpoints
        endpoints |= set(also)
        return resolve(
            names, replicas=self.replicas, endpoints=endpoints, status=self.status, rng=self.rng,
            display=self.display,
        )

    def _link_fault(self, fault: Fault) -> dict[str, Any]:
        if fault.kind == "isolate":
            node = self._resolve([fault.node])
            others = [r for r in self.replicas if r not in node]
            fault = Fault(kind="partition", src=tuple(node), dst=tuple(others))
        elif fault.shape:
            node = self._resolve([fault.node], replicas_only=True)[0] if fault.node else None
            try:
                links = shape_links(fault.shape, self.replicas, node)
            except ShapeError as e:
                raise FaultError(str(e)) from None
            fault = msgspec.structs.replace(fault, node=node or "", links=tuple(links))
        else:
            src = self._resolve(fault.src)
            dst = self._resolve(fault.dst)
            if not any(a != b for a in src for b in dst):  # r0 -> r0: no link to act on
                raise FaultError(
                    f"{fault.kind} from {','.join(src)} to {','.join(dst)} acts on no link "
                    "(a node is never cut off from itself); name two different sides"
                )
            fault = msgspec.structs.replace(fault, src=tuple(src), dst=tuple(dst))
        self.fault_ids += 1
        self.link_faults.append((self.fault_ids, fault))
        pushed = self._push_links()
        if not pushed.get("ok"):
            self.link_faults.pop()
            return pushed
        self.emit("fault", fault=fault.kind, describe=fault.describe(), id=self.fault_ids,
                  **{"from": list(fault.src), "to": list(fault.dst)})  # fmt: skip
        return ok(applied=[fault.describe()], id=self.fault_ids)

    def _heal(self, fault: Fault) -> dict[str, Any]:
        src = set(self._resolve(fault.src)) if fault.src else None
        dst = set(self._resolve(fault.dst)) if fault.dst else None
        healed, self.link_faults = split_healed(self.link_faults, src, dst)
        pushed = self._push_links()
        if not pushed.get("ok"):
            return pushed
        self.emit("fault.healed", fault="heal", healed=[f.describe() for f in healed])
        return ok(applied=[f"heal ({len(healed)} link faults removed)"], healed=len(healed))

    def _push_links(self) -> dict[str, Any]:
        table = link_table([f for _, f in self.link_faults])
        answer = request(
            self.ctx, str(self.router_control), {"cmd": "set_links", "links": table}, 2.0
        )
        if answer is None:
            return error("the fault router did not answer", "lab_failed")
        if self.etcd is not None:  # etcd's peer traffic crosses the TCP proxy (labctl/etcd/)
            return self.etcd.push_links(self.ctx, self.children, table, answer)
        return answer

    def _node_fault(self, fault: Fault, node: str) -> dict[str, Any]:
        c = self.children[node]
        kind = fault.kind
        late = False  # a node fault sent, not yet confirmed by the node
        if kind == "pause":
            if c.state != "running":
                return error(f"{node} is {c.state}, not running", "bad_state")
            c.suspend()
            if fault.duration:
                c.paused_until = true_now() + fault.duration
                self.fault_ids += 1
                heapq.heappush(self.timers, (c.paused_until, self.fault_ids, "resume", node))
        elif kind == "resume":
            if c.state != "paused":
                return error(f"{node} is {c.state}, not paused", "bad_state")
            c.resume()
        elif kind == "kill":
            if c.state == "stopped":
                return error(f"{node} is already stopped", "bad_state")
            if fault.power_loss and self.etcd is not None:
                return error("power loss is not for etcd: its WAL is its own, and the lab "
                             "cannot tell what it fsynced (kill is a crash)", "bad_fault")
            if fault.power_loss and c.kind != "replica":
                return error(f"{node} keeps no WAL: power loss is a replica's fault", "bad_fault")
            c.kill()
            self.status.pop(node, None)
            if fault.power_loss:
                # The process is dead; now the machine: unsynced writes never reached disk.
                lost = cut_to_synced(self.run.path / "data" / node / "wal.log")
                self.emit("fault.power_loss", node=node, lost_bytes=lost)
        elif kind == "restart":
            problem = self._restart(c)
            if problem:
                return error(problem, "lab_failed")
        elif kind in ("clock", "disk", "byzantine"):
            # Faults the node itself carries out, through its control socket.
            problem = byzantine_problem(self.protocol, fault.mode) if kind == "byzantine" else None
            if problem:
                return error(problem, "bad_fault")
            if c.state != "running":
                return error(f"{node} is {c.state}: it cannot take a {kind} fault now", "bad_state")
            answer = self._send_node_fault(node, fault)
            if not answer.get("ok"):
                return answer
            late = bool(answer.get("unconfirmed"))
            self.node_faults.setdefault(node, {})[kind] = msgspec.structs.replace(fault, node=node)
            if self._is_neutral(fault):
                self.node_faults[node].pop(kind)
        describe = msgspec.structs.replace(fault, node=node).describe()
        if late:
            describe += f" (unconfirmed: {node} is busy; it applies it when it reads it)"
        extra = {"mode": fault.mode or "honest"} if kind == "byzantine" else {}
        self.emit("fault", fault=kind, node=node, describe=describe, pid=c.pid, **extra)
        return ok(describe=describe)

    def _corrupt_wals(self, fault: Fault, nodes: list[str]) -> dict[str, Any]:
        """Stop the nodes, damage their WALs on disk, start them again: a disk's damage
        shows when the log is read back. All are damaged before any restarts (disks that
        fail together), so none is repaired from another before the last is hit."""
        children = [self.children[n] for n in nodes]
        for c in children:
            if c.state != "stopped":
                c.kill()
            self.status.pop(c.name, None)
        done = {c.name: corrupt(self.run.path / "data" / c.name / "wal.log", fault.corrupt,
                                self.rng) for c in children}  # fmt: skip
        for c in children:
            c.spawn()
        applied, outcomes = [], []
        for c in children:
            self._check_children()  # one that refused already is not blamed on the next
            if c.state == "stopped":
                outcome = (f"{c.name}: {done[c.name]}; refused to start "
                           "(see its wal_corrupt event and log)")  # fmt: skip
            else:
                outcome = ""
            try:
                if not outcome:
                    self._wait(lambda c=c: c.state == "running", c.name, timeout=10.0)
                    outcome = f"{c.name}: {done[c.name]}; restarted on it"
            except StartupError:
                outcome = (f"{c.name}: {done[c.name]}; refused to start "
                           "(see its wal_corrupt event and log)")  # fmt: skip
            describe = msgspec.structs.replace(fault, node=c.name).describe()
            self.emit("fault", fault="disk", node=c.name, describe=describe,
                      corrupt=fault.corrupt, outcome=outcome, pid=c.pid)  # fmt: skip
            applied.append(describe)
            outcomes.append(outcome)
        return ok(applied=applied, nodes=nodes, outcome="\n  ".join(outcomes))
    def _restart(self, c: Any) -> str | None:
        """Kill (if needed) and start `c` again, and wait until it works: ready, and for a
        replica its first status from the main loop (its WAL replayed, its protocol
        started). Returns why it does not, or None."""
        if c.state != "stopped":
            c.kill()
        self.status.pop(c.name, None)
        if c.kind == "router" and self.router_data and "--data-port" not in c.argv:
            # Back on its old port: every endpoint's DEALER reconnects by itself.
            c.argv += ["--data-port", self.router_data.rsplit(":", 1)[1]]
        c.extra["status"] = False
        c.spawn()
        try:
            self._wait(lambda: c.state == "running", c.name, timeout=10.0)
            if c.kind == "replica":
                self._wait(lambda: c.extra["status"] or not c.alive(), c.name, timeout=10.0)
        except StartupError as e:
            return str(e)
        if not c.alive():
            code = c.proc.returncode if c.proc else None
            return f"{c.name} exited right after it started (code {code}); see {c.log_path}"
        if c.kind == "router":
            pushed = self._push_links()  # the new router starts with an empty table
            if not pushed.get("ok"):
                return f"the restarted router refused its link table: {pushed.get('error')}"
        return None

    def _send_node_fault(self, node: str, fault: Fault) -> dict[str, Any]:
        c = self.children[node]
        if fault.kind == "clock":
            payload = {"cmd": "clock", "offset": fault.offset, "drift": fault.drift}
        elif fault.kind == "byzantine":
            payload = {"cmd": "byzantine", "mode": fault.mode}
        else:
            payload = {"cmd": "disk", "fsync": fault.fsync, "stall": fault.stall}
        answer = request(self.ctx, str(c.control), payload, NODE_TIMEOUT)
        if answer is None:
            if not c.alive():
                return error(f"{node} did not answer its control socket: it exited", "lab_failed")
            # Busy, not broken: a node whose disk the lab stalled, or one starved of CPU,
            # reads its control socket only when its loop comes round again. The request
            # waits there and takes effect then. Failing the lab for it made chaos runs on
            # a loaded machine end as lab errors (a clock fault sent during a disk stall).
            return ok(unconfirmed=True)
        return answer

    @staticmethod
    def _is_neutral(fault: Fault) -> bool:
        if fault.kind == "clock":
            return not fault.offset and not fault.drift
        if fault.kind == "byzantine":
            return fault.mode in ("", "honest")
        return not fault.fsync and not fault.stall

    def _reapply_node_faults(self, node: str) -> None:
        """A restarted node runs on the same (slow) disk and (skewed) clock as before."""
        for fault in self.node_faults.get(node, {}).values():
            if fault.kind == "disk":
                fault = msgspec.structs.replace(fault, stall=None)  # a past stall is over
            self._send_node_fault(node, fault)
