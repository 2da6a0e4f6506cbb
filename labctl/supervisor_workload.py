"""The supervisor's workloads: client processes started and stopped on request.

`{"cmd": "workload", "action": "start", "spec": ...}` starts the spec's clients
(`nodes.workload`, or the Maelstrom clients of external nodes), each told the protocol's
client rule as the lab declared it (how many matching replies, whether requests go to
every replica) and the lab's workload mutation, if it has one; "stop" stops them. A
mixin of `Supervisor` (labctl/supervisor.py), which owns the state.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import zmq

from labctl.children import Child, stop_all
from labctl.external import ExternalNodes
from labctl.intake import Rejected, workload_spec
from labctl.rundir import RunDir
from nodes.external.names import WORKLOADS as MAELSTROM_WORKLOADS
from nodes.process import error, ok

# A stopped client ends at its next turn (<= 0.1 s), records what is still open as info
# and flushes its telemetry (0.5 s linger); on a loaded machine that takes seconds. With
# the other children's 1 s and the 4 s whole-run search, shutdown stays inside the 10 s
# `labctl down` waits.
CLIENT_GRACE = 3.0


class WorkloadMixin:
    # Provided by Supervisor.
    ctx: zmq.Context
    run: RunDir
    children: dict[str, Any]
    replicas: list[str]
    external: ExternalNodes | None
    router_data: str | None
    telemetry_ep: str
    seed: int
    client_quorum: int  # matching replies a client needs (f+1 for a byzantine-tolerant one)
    broadcast: bool  # clients send every request to every replica
    workload: dict[str, Any] | None

    if TYPE_CHECKING:  # stubs only for the checker: real ones would shadow the others'

        def _drain_telemetry(self) -> None: ...  # TelemetryMixin

        def emit(self, kind: str, **data: Any) -> None: ...  # TelemetryMixin

        def _mutate_args(self, target: str) -> list[str]: ...  # Supervisor

    def _stop_workload(self) -> int:
        """Stop the workload's clients and take in everything they recorded; how many
        there were. Before the replicas and the router (supervisor.shutdown): a client
        killed before its last records leave loses its newest invokes while another
        client's read of such a write survives, and that read looks like a value from
        nowhere (a false nonlinearizable, seen at load 27 in a 1,000 ops/s soak)."""
        clients = [c for c in self.children.values() if c.kind == "client"]
        stop_all(clients, grace=CLIENT_GRACE)
        self._drain_telemetry()
        self.workload = None
        return len(clients)

    def _workload(self, req: dict[str, Any]) -> dict[str, Any]:
        action = req.get("action")
        clients = [c for c in self.children.values() if c.kind == "client"]
        if action == "stop":
            return ok(stopped=self._stop_workload())
        if action != "start":
            return error("workload action must be start or stop")
        if any(c.alive() for c in clients):
            return error("a workload is already running", "bad_state")
        try:
            spec = workload_spec(req.get("spec"))
        except Rejected as e:
            return error(str(e.detail))
        if spec.target not in ("leader", "any", *self.replicas):
            return error(f"workload target must be leader, any or a replica, got {spec.target!r}")
        if self.external is None and spec.kind in MAELSTROM_WORKLOADS:
            return error(f"{spec.kind} is a Maelstrom workload: it needs external nodes "
                         "(labctl up --node-cmd ...)", "bad_workload")  # fmt: skip
        n = spec.clients
        rate = spec.rate / n
        logs = self.run.path / "logs"
        if self.external is not None:
            controls = {r: self.children[r].control for r in self.replicas
                        if self.children[r].state == "running"}  # fmt: skip
            problem = self.external.start_workload(spec, self.ctx, controls, self.run.path)
            if problem:
                return error(problem, "bad_workload")
        for i in range(n):
            name = f"c{i}"
            argv = [
                "-m", "nodes.workload", "--name", name, "--router", str(self.router_data),
                "--telemetry", self.telemetry_ep, "--replicas", ",".join(self.replicas),
                "--kind", spec.kind, "--rate", str(rate), "--target", spec.target,
                "--reads", spec.reads, "--keys", str(spec.keys), "--timeout", str(spec.timeout),
                "--retries", str(spec.retries), "--seed", str(self.seed),
                "--quorum", str(self.client_quorum), "--parent-pid", str(os.getpid()),
            ]  # fmt: skip
            if self.broadcast:
                argv.append("--broadcast")
            argv += self._mutate_args("workload")
            if spec.duration:
                argv += ["--duration", str(spec.duration)]
            if self.external is not None:
                argv = self.external.workload_argv(
                    name, i, spec, rate, str(self.router_data), self.telemetry_ep, self.seed,
                    os.getpid(),
                )
            child = Child(name, "client", argv, logs / f"{name}.log")
            self.children[name] = child
            child.spawn()
            child.state = "running"  # clients report nothing until their first operation
        self.workload = {
            k: getattr(spec, k) for k in ("kind", "rate", "clients", "target", "reads")
        }
        self.emit("workload.start", workload=self.workload)
        return ok(clients=n)
