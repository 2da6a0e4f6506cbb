"""The lab side of external nodes (nodes/external/): their config, the processes the
supervisor starts for them, and what it tells them when a workload starts.

A lab config with a "node" mapping runs external replicas (protocol "external"):

    {"command": "python3 my_node.py", "argv": [...], "topology": "grid",
     "init_timeout": 5.0, "max_rate": 10000}

`node_config` validates it before anything starts (the CLI's `--node-cmd`, a scenario's
`[node]` table); `ExternalNodes` is the supervisor's helper: adapter, services and
workload command lines, and the broadcast topology each replica is told (again after a
restart: the fresh program gets init and then the topology).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nodes.external import names
from nodes.external.program import ProgramError, split_command
from nodes.external.topology import TOPOLOGIES, TOPOLOGY_FILE, topology
from nodes.process import request
from protocols.display import DEFAULT_ROLES, Column, Display

EXTERNAL = "external"
# What `labctl status` and the dashboard show of external replicas: what the adapter sees,
# and the role and term the program reports if it sends the optional lab_role message
# (any short string; "leader" claims leadership, docs/external-nodes.md).
DISPLAY = Display(
    roles=DEFAULT_ROLES,
    columns=(
        Column("role", format="role", priority=2),
        Column("term", priority=3, right=True),
        Column("msgs_in", "in", priority=5, right=True),
        Column("msgs_out", "out", priority=5, right=True),
        Column("errors", format="count", priority=4, right=True),
        Column("program_pid", "program", priority=8, right=True),
        Column("starts", priority=9, right=True, dashboard_only=True),
    ),
)
NODE_KEYS = {"command", "topology", "init_timeout", "max_rate"}


class NodeConfigError(ValueError):
    """A bad [node] table or --node-cmd: one line for the user."""


def node_config(raw: dict[str, Any]) -> dict[str, Any]:
    """The validated node mapping (argv resolved; defaults filled in)."""
    unknown = set(raw) - NODE_KEYS - {"argv"}
    if unknown:
        raise NodeConfigError(f"node: unknown key {sorted(unknown)[0]!r} "
                              f"(known: {', '.join(sorted(NODE_KEYS))})")  # fmt: skip
    command = raw.get("command")
    if not isinstance(command, str) or not command.strip():
        raise NodeConfigError("node: command is required, a command line such as "
                              "\"python3 my_node.py\"")  # fmt: skip
    try:
        argv = split_command(command)
    except ProgramError as e:
        raise NodeConfigError(str(e)) from None
    topo = raw.get("topology", "grid")
    if topo not in TOPOLOGIES:
        raise NodeConfigError(
            f"node: topology must be one of {', '.join(TOPOLOGIES)}, got {topo!r}"
        )
    init_timeout = raw.get("init_timeout", 5.0)
    max_rate = raw.get("max_rate", 10_000)
    for key, v, lo, hi in (("init_timeout", init_timeout, 0.1, 60), ("max_rate", max_rate, 1, 1e6)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise NodeConfigError(f"node: {key} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return {"command": command, "argv": argv, "topology": topo,
            "init_timeout": float(init_timeout), "max_rate": float(max_rate)}  # fmt: skip


def workload_problem(kind: str) -> str | None:
    if kind in names.WORKLOADS:
        return None
    return (f"external nodes run Maelstrom workloads ({', '.join(names.WORKLOADS)}), "
            f"not {kind!r}")  # fmt: skip


class ExternalNodes:
    """What the supervisor does differently for a lab of external replicas."""

    def __init__(self, node: dict[str, Any], replicas: list[str]) -> None:
        self.node = node
        self.replicas = replicas
        self.topology: dict[str, list[str]] | None = None  # set by a broadcast workload

    def adapter_argv(self, r: str, router: str, telemetry: str, run: Path, me: int) -> list[str]:
        return [
            "-m", "nodes.external.adapter", "--id", r, "--replicas", ",".join(self.replicas),
            "--command", json.dumps(self.node["argv"]), "--router", router,
            "--telemetry", telemetry, "--logs", str(run / "logs"),
            "--data-dir", str(run / "data" / r), "--init-timeout", str(self.node["init_timeout"]),
            "--max-rate", str(self.node["max_rate"]), "--parent-pid", str(me),
        ]  # fmt: skip

    @staticmethod
    def services_argv(router: str, telemetry: str, seed: int, me: int) -> list[str]:
        return ["-m", "nodes.external.services", "--router", router, "--telemetry", telemetry,
                "--seed", str(seed), "--parent-pid", str(me)]  # fmt: skip

    def workload_argv(self, name: str, index: int, spec: Any, rate: float, router: str,
                      telemetry: str, seed: int, me: int) -> list[str]:  # fmt: skip
        """A Maelstrom client's command line for the supervisor's WorkloadSpec `spec`."""
        kind = "lin-kv" if spec.kind == "kv" else spec.kind
        argv = [
            "-m", "nodes.external.workload", "--name", name, "--router", router,
            "--telemetry", telemetry, "--replicas", ",".join(self.replicas),
            "--kind", kind, "--rate", str(rate),
            "--target", "any" if spec.target == "leader" else spec.target,
            "--keys", str(spec.keys), "--timeout", str(max(spec.timeout, 0.5)),
            "--settle", str(spec.settle), "--seed", str(seed), "--parent-pid", str(me),
        ]  # fmt: skip
        if spec.duration:
            argv += ["--duration", str(spec.duration)]
        if index == 0:
            argv.append("--final")  # one client reads every replica at the end
        return argv

    def start_workload(self, spec: Any, ctx: Any, controls: dict[str, str | None],
                       run: Path) -> str | None:  # fmt: skip
        """Before the clients start: a broadcast workload's topology to every replica
        (and into `data/topology.json`, which a restarted replica's adapter hands its
        fresh program right after init_ok, before any other message). The problem, or None.
        `spec` is the supervisor's WorkloadSpec (labctl/intake.py)."""
        kind = "lin-kv" if spec.kind == "kv" else spec.kind  # the dashboard's kv is lin-kv
        problem = workload_problem(str(kind))
        if problem:
            return problem
        path = run / "data" / TOPOLOGY_FILE
        if kind != "broadcast":
            path.unlink(missing_ok=True)  # a restarted program gets no stale topology
            return None
        self.topology = topology(self.node["topology"], len(self.replicas))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.topology))
        os.replace(tmp, path)
        for control in controls.values():
            if control is not None:
                request(ctx, control, {"cmd": "topology", "topology": self.topology}, 2.0)
        return None
