"""The supervisor: owns one lab from `up` to `down`.

    python -m labctl.supervisor --lab-dir DIR --config JSON

It spawns the router, the broker and the replicas, answers control requests (CLI,
dashboard) on a ROUTER socket, watches its children and its parent, and at the end
leaves a complete run record (summary.json whatever failed). It holds the lab dir's lock
for its whole life. This module is the lab's life (start, the loop, control, status,
shutdown); each other idea is a module of its own, a mixin that names what it needs:

- supervisor_telemetry.py: every telemetry message, and where it goes (run record,
  live checkers, the PUB socket dashboards read);
- supervisor_faults.py: a fault of the vocabulary carried out (router table, signals,
  node control sockets);
- supervisor_workload.py: workload clients started and stopped on request;
- children.py (one child process), rundir.py (the run record's files), intake.py (what
  arrives, decoded as data), external.py (external replicas).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import zmq

import protocols
from faults import trace
from faults.model import Fault, FaultError
from labctl import etcd as etcd_lab
from labctl import labdir, mutants
from labctl.checkers import CheckerConfig, CheckerSet
from labctl.children import Child, last_line, stop_all
from labctl.external import DISPLAY as EXTERNAL_DISPLAY
from labctl.external import ExternalNodes
from labctl.intake import Rejected, history_record
from labctl.rundir import RunDir
from labctl.supervisor_faults import FaultsMixin, StartupError
from labctl.supervisor_telemetry import TelemetryMixin
from labctl.supervisor_workload import WorkloadMixin
from nodes import auth
from nodes.external.names import SERVICES
from nodes.inbound import Drops
from nodes.process import (
    die_with_parent,
    error,
    ok,
    parent_alive,
    request_all,
    serve_control,
    true_now,
)
from protocols.base import client_quorum

READY_TIMEOUT = 20.0
RELEASE_TIMEOUT = 5.0  # a loaded replica answers the start release from its waiting loop
SHUTDOWN_LIN_SECONDS = 4.0  # the whole-run search at shutdown (`labctl down` waits 10 s)


class Supervisor(FaultsMixin, TelemetryMixin, WorkloadMixin):
    def __init__(self, lab_dir: Path, config: dict[str, Any]) -> None:
        self.lab_dir = lab_dir
        # The lab's named mutation, if any, resolved to the process that carries it
        # (labctl/mutants.py); the CLI and the scenario runner validated it already.
        self.config = config = mutants.configure(config)
        self.mutation = mutants.target_of(config)  # (target, name) or None
        self.protocol: str = config["protocol"]
        self.replicas = [f"r{i}" for i in range(int(config["nodes"]))]
        # External replicas (labctl/external.py) are the user's program behind an adapter.
        self.external = ExternalNodes(config["node"], self.replicas) if config.get("node") else None
        # A real system's members (labctl/etcd/): etcd in namespaces, peers via the TCP proxy.
        self.etcd = (etcd_lab.EtcdNodes(config["system"], self.replicas, str(os.getpid()))
                     if config.get("system") else None)  # fmt: skip
        # What the protocol declares that the lab's readers need: its roles and columns
        # (into every status document and lab.json, so readers need not import it).
        self.declared: dict[str, Any]
        label = self.protocol  # in the run dir's name: a module:Class lab says its class's
        if self.external is not None:
            self.client_quorum, self.broadcast = 1, False
            self.display = EXTERNAL_DISPLAY
            self.declared = {"exactly_once": False, "ordering": "total"}
        elif self.etcd is not None:
            self.client_quorum, self.broadcast = 1, False
            self.display, self.declared = etcd_lab.DISPLAY, dict(etcd_lab.DECLARED)
        else:
            proto = protocols.get(self.protocol)
            self.client_quorum = client_quorum(proto, len(self.replicas))
            self.broadcast = proto.byzantine_tolerant  # clients send to every replica
            self.display = proto.display()
            self.declared = {"exactly_once": proto.exactly_once, "ordering": proto.ordering}
            label = proto.name
        self.declared["display"] = self.display.to_doc()
        self.seed = int(config.get("seed", 0))
        self.rng = random.Random(f"{self.seed}:supervisor")
        self.parent_pid: int | None = config.get("parent_pid")
        self.started = true_now()
        # The lab's secret: every socket of the lab asks for it (nodes/auth.py); children
        # inherit it through the environment, never a command line. `open_endpoints` is
        # for one thing only, `labctl bench raft` measuring what authentication costs: no
        # CLI option or scenario key sets it.
        self.open_endpoints = config.get("open_endpoints") is True
        if self.open_endpoints:
            self.secret: bytes | None = None
            os.environ.pop(auth.ENV, None)
        else:
            self.secret = auth.create_secret(lab_dir)
            os.environ.update(auth.child_env(self.secret))
        self.ctx = zmq.Context()
        self.zap = auth.serve(self.ctx, self.secret)
        self.control, self.control_ep = self._bind(zmq.ROUTER)
        self.telemetry, self.telemetry_ep = self._bind(zmq.PULL)
        self.telemetry.setsockopt(zmq.RCVHWM, 200000)
        self.pub, self.pub_ep = self._bind(zmq.PUB)
        runs_root = Path(config["runs_root"]) if config.get("runs_root") else lab_dir / "runs"
        self.run = RunDir(runs_root, config.get("name", "lab"), label)
        self.children: dict[str, Child] = {}
        self.status: dict[str, dict[str, Any]] = {}  # latest node.status per replica
        self.router_stats: dict[str, Any] = {}
        self.router_links: dict[tuple[str, str], list[Any]] = {}
        self.router_control: str | None = None
        self.router_data: str | None = None
        self.link_faults: list[tuple[int, Fault]] = []  # resolved, in the order given
        self.node_faults: dict[str, dict[str, Fault]] = {}  # node -> kind -> fault (clock, disk)
        self.fault_ids = 0
        self.timers: list[tuple[float, int, str, str]] = []  # (true time, id, action, node)
        self.counters: dict[str, int] = {"malformed": 0, "telemetry": 0, "faults": 0}
        self.drops = Drops("supervisor")  # what "malformed" counts, by kind
        self.elections = 0
        self.leaders_by_term: dict[int, set[str]] = {}
        self.running = True
        self.checkers: CheckerSet | None = None
        if config.get("checkers", True):
            self.checkers = CheckerSet(CheckerConfig.from_lab({**config, **self.declared}))
        self.violations: list[dict[str, Any]] = []
        self.ops = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        self.workload: dict[str, Any] | None = None
        self.next_lin_check = 0.0

    def _bind(self, kind: int) -> tuple[zmq.Socket, str]:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        auth.as_server(sock, self.secret)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        return sock, f"tcp://127.0.0.1:{port}"

    @property
    def endpoints(self) -> set[str]:
        # Client endpoints c0..c15 are always addressable: workload clients join and leave.
        services = set(SERVICES) if self.external is not None else set()
        return set(self.replicas) | {"broker"} | {f"c{i}" for i in range(16)} | services

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        self.run.write_lab({**self.config, "replicas": self.replicas, **self.declared})
        logs = self.run.path / "logs"
        tele = self.telemetry_ep
        me = str(os.getpid())
        router = Child(
            "router",
            "router",
            [
                "-m",
                "faults.router",
                "--telemetry",
                tele,
                "--parent-pid",
                me,
                "--seed",
                str(self.seed),
                # the largest frame the data plane forwards (lab config "max_frame", bytes)
                *(["--max-frame", str(int(config["max_frame"]))] if config.get("max_frame")
                  else []),
                *self._trace_args(),
            ],
            logs / "router.log",
        )
        self.children["router"] = router
        router.spawn()
        self._wait(lambda: self.router_data is not None, "the fault router")
        if self.etcd is not None:
            self._start_etcd_proxy(logs)
        broker_args = [
            "-m", "nodes.broker", "--router", self.router_data, "--telemetry", tele,
            "--record", str(self.run.path / "broker.jsonl"), "--parent-pid", me,
            "--replicas", ",".join(self.replicas),
        ]  # fmt: skip
        if self.config.get("fencing"):
            broker_args.append("--fencing")
        broker_args += self._mutate_args("broker")
        self.children["broker"] = Child("broker", "broker", broker_args, logs / "broker.log")
        for r in self.replicas:
            self.children[r] = Child(r, "replica", self._replica_argv(r), logs / f"{r}.log")
        if self.external is not None:
            argv = self.external.services_argv(str(self.router_data), tele, self.seed, int(me))
            self.children["services"] = Child("services", "service", argv, logs / "services.log")
        # The start barrier: the lab's own replicas load (imports, WAL, router) and wait;
        # external programs and etcd members start as they always did (they know nothing
        # of it). A restart later spawns one replica without it (supervisor_faults.py).
        barrier = self.external is None and self.etcd is None
        for c in self.children.values():
            if c.kind not in ("router", "proxy"):
                c.spawn(("--barrier",) if barrier and c.kind == "replica" else ())
                if c.kind == "service":
                    c.state = "running"  # it reports nothing a start waits for
        if barrier:
            self._release_replicas()
        self._wait(
            lambda: all(c.state == "running" for c in self.children.values()),
            "every replica",
        )
        self.emit("lab.ready", nodes=self.replicas, protocol=self.protocol)
        labdir.write_state(self.lab_dir, self.state_doc())

    def _release_replicas(self) -> None:
        """Wait until every replica has loaded (node.loaded), then release them all in one
        send loop. On a busy machine replicas finish importing up to 0.4 s apart: started
        as each was ready, a protocol with short timeouts (naive's 300 ms) had a replica
        time out before its peers ran, and a lab meant to start with one leader started in
        split brain. Released together, their clocks start within milliseconds."""
        replicas = [self.children[r] for r in self.replicas]
        self._wait(lambda: all(c.extra.get("loaded") for c in replicas), "every replica to load")
        answers = request_all(self.ctx, {c.name: str(c.control) for c in replicas},
                              {"cmd": "release"}, RELEASE_TIMEOUT)  # fmt: skip
        self.emit("lab.released", nodes=self.replicas)
        for name, answer in answers.items():
            if not (answer and answer.get("ok")):
                c = self.children[name]
                why = (f"exited (code {c.proc.returncode if c.proc else '?'}): "
                       f"{last_line(c.log_path)}" if not c.alive()
                       else f"answered {answer}")  # fmt: skip
                raise StartupError(f"{name} did not take the start release: {why} "
                                   f"(see {c.log_path})")  # fmt: skip

    def _trace_args(self) -> list[str]:
        """The router records the message trace into the run dir (faults/trace.py) unless
        the config's trace_cap is 0."""
        cap = int(self.config.get("trace_cap", trace.DEFAULT_CAP))
        if cap <= 0:
            return []
        return ["--trace", str(trace.trace_path(self.run.path)), "--trace-cap", str(cap)]

    def _start_etcd_proxy(self, logs: Path) -> None:
        try:
            self.etcd.setup()  # the members' namespaces (root only)
        except etcd_lab.netns.NetnsError as e:
            raise StartupError(str(e)) from None
        argv = self.etcd.proxy_argv(self.telemetry_ep, self.seed, os.getpid())
        proxy = self.children[etcd_lab.PROXY] = Child(etcd_lab.PROXY, "proxy", argv,
                                                      logs / "peerproxy.log")  # fmt: skip
        proxy.spawn()

    def _replica_argv(self, r: str) -> list[str]:
        if self.etcd is not None:
            return self.etcd.member_argv(
                r, str(self.router_data), self.telemetry_ep, self.run.path, os.getpid()
            )
        if self.external is not None:
            return self.external.adapter_argv(
                r, str(self.router_data), self.telemetry_ep, self.run.path, os.getpid()
            )
        return [
            "-m", "nodes.replica", "--id", r, "--replicas", ",".join(self.replicas),
            "--protocol", self.protocol, "--options", json.dumps(self.config.get("options", {})),
            "--seed", str(self.seed), "--router", str(self.router_data),
            "--telemetry", self.telemetry_ep,
            "--data-dir", str(self.run.path / "data" / r), "--parent-pid", str(os.getpid()),
        ] + ([] if self.config.get("fsync", True) else ["--no-fsync"])  # fmt: skip

    def _mutate_args(self, target: str) -> list[str]:
        """`--mutate NAME` for the process kind that carries the lab's mutation."""
        if self.mutation is None or self.mutation[0] != target:
            return []
        return ["--mutate", self.mutation[1]]

    def _wait(self, done: Any, what: str, timeout: float = READY_TIMEOUT) -> None:
        """Process telemetry until `done()`; a child that dies meanwhile fails the start."""
        deadline = true_now() + timeout
        while not done():
            if true_now() > deadline:
                raise StartupError(f"{what} did not become ready within {timeout:g}s")
            for c in self.children.values():
                if c.state == "starting" and not c.alive():
                    # Mark it stopped before saying so: a status asked for next must not
                    # still show the dead child as running (status shows starting so).
                    self._check_children()
                    raise StartupError(
                        f"{c.name} exited during start "
                        f"(code {c.proc.returncode if c.proc else '?'}): "
                        f"{last_line(c.log_path)} (see {c.log_path})"
                    )
            if self.telemetry.poll(50):
                self._drain_telemetry()

    def state_doc(self) -> dict[str, Any]:
        return {
            "supervisor_pid": os.getpid(),
            "control": self.control_ep,
            "pub": self.pub_ep,
            "router": self.router_data,
            "protocol": self.protocol,
            "mutate": self.config.get("mutate"),
            "nodes": self.replicas,
            "seed": self.seed,
            "run_dir": str(self.run.path),
            "started_wall": time.time(),
            **({"open_endpoints": True} if self.open_endpoints else {}),
        }

    # -- the loop ------------------------------------------------------------------------

    def loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        poller.register(self.telemetry, zmq.POLLIN)
        next_check = 0.0
        while self.running:
            now = true_now()
            wait = 0.1
            if self.timers:
                wait = max(0.0, min(wait, self.timers[0][0] - now))
            events = dict(poller.poll(int(wait * 1000)))
            if self.telemetry in events:
                self._drain_telemetry()
            self._fire_timers()
            if self.control in events:
                serve_control(self.control, self.handle, self.counters)
            now = true_now()
            if now >= next_check:
                next_check = now + 0.2
                self._check_children()
                if not parent_alive(self.parent_pid):
                    self.emit("lab.parent_gone")
                    self.running = False
            self.run.maybe_flush(now)
            if now >= self.next_lin_check:
                self._check_linearizability(now)

    def _fire_timers(self) -> None:
        now = true_now()
        while self.timers and self.timers[0][0] <= now:
            _, _, action, node = heapq.heappop(self.timers)
            child = self.children.get(node)
            if action == "resume" and child and child.state == "paused":
                child.resume()
                self.emit("fault.healed", fault=f"pause {node}", node=node)

    def _check_children(self) -> None:
        for c in self.children.values():
            if c.state in ("running", "paused", "starting") and not c.alive():
                code = c.proc.returncode if c.proc else None
                c.state, c.exit_code = "stopped", code
                self.emit("process.exit", node=c.name, code=code)

    # -- control -------------------------------------------------------------------------

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        if cmd == "ping":
            return ok(pid=os.getpid())
        if cmd == "status":
            return ok(**self.status_doc())
        if cmd == "fault":
            spec = req.get("fault")
            if not isinstance(spec, dict):
                return error("'fault' must be a mapping")
            try:
                return self.apply_fault(spec)
            except FaultError as e:
                return error(str(e), "bad_fault")
        if cmd == "faults":
            return ok(faults=self.faults_in_force())
        if cmd == "history":
            try:
                record = history_record(req.get("record"))
            except Rejected as e:
                return error(str(e.detail))  # counted as refused, like every error answer
            self._history(record)
            return ok()
        if cmd == "workload":
            return self._workload(req)
        if cmd == "shutdown":
            self.running = False
            return ok(run_dir=str(self.run.path))
        return error(f"unknown command {cmd!r}", "unknown_command")

    def status_doc(self) -> dict[str, Any]:
        nodes = []
        now = true_now()
        for r in self.replicas:
            c = self.children[r]
            s = self.status.get(r, {})
            node = {
                "id": r,
                "pid": c.pid if c.state != "stopped" else None,
                "state": "running" if c.state == "starting" else c.state,
                "role": s.get("role") if c.state != "stopped" else "down",
                "term": s.get("term"),
                "leader": s.get("leader"),
                "commit_index": s.get("commit_index"),
                "applied_index": s.get("applied_index"),
                "log": s.get("log"),
                "lease_expiry": s.get("lease_expiry_true"),
                "paused_for": round(c.paused_until - now, 3) if c.paused_until else None,
                "clock_offset": s.get("clock_offset"),
                "clock_drift": s.get("clock_drift"),
                "starts": c.starts,
            }
            node.update({k: v for k, v in s.items() if k not in node})
            nodes.append(node)
        return {
            "supervisor_pid": os.getpid(),
            "protocol": self.protocol,
            "mutate": self.config.get("mutate"),
            "seed": self.seed,
            "run_dir": str(self.run.path),
            "uptime": round(now - self.started, 3),
            "nodes": nodes,
            "leaders": [n["id"] for n in nodes if self.display.leads(n["role"])],
            "display": self.declared["display"],
            "faults": self.faults_in_force(),
            "violations": self.violations,
            "ops": self.ops,
            "workload": self.workload,
            "processes": {
                name: {"pid": c.pid, "state": c.state, "kind": c.kind, "control": c.control}
                for name, c in self.children.items()
            },
            "router": self.router_stats,
            **({"peer_links": self.etcd.links} if self.etcd is not None else {}),
            "counters": self.counters,
            "dropped": self.drops.as_dict(),
        }

    # -- stop ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every child, run the whole-run checks, and leave a complete record, even if
        part of this fails (the record matters most when the lab broke)."""
        try:
            self._stop_workload()  # first, while the data plane still answers them
            stop_all(list(self.children.values()))
            self._drain_telemetry()
            if self.checkers is not None and not self.checkers.finished:
                # Bounded, so `labctl down` never has to kill us mid-search: a key left
                # unsearched is "unknown (budget: time)" in the summary, and `labctl check`
                # can search it with a budget of its own.
                lin_deadline = time.monotonic() + SHUTDOWN_LIN_SECONDS
                self._report(self.checkers.finish(lin_deadline))
            self.emit("lab.stopped")
        finally:
            if self.etcd is not None:
                self.etcd.teardown()  # the namespaces, after every member is gone
            try:
                summary = self.summary()
            except Exception as e:  # the record must still be written
                summary = {"protocol": self.protocol, "run_dir": str(self.run.path),
                           "error": f"the summary could not be computed: {e!r}"}  # fmt: skip
            self.run.write_summary(summary)
            self.run.close()
            labdir.remove_state(self.lab_dir)
            for s in (self.control, self.telemetry, self.pub):
                s.close(0)
            self.ctx.term()

    def summary(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "nodes": len(self.replicas),
            "seed": self.seed,
            "run_dir": str(self.run.path),
            "duration": round(true_now() - self.started, 3),
            "elections": self.elections,
            "leaders_by_term": {str(t): sorted(n) for t, n in sorted(self.leaders_by_term.items())},
            "final": self.status,
            "router": self.router_stats,
            "faults_applied": self.counters["faults"],
            "ops": self.ops,
            "violations": self.violations,
            "checkers": self.checkers.summary() if self.checkers is not None else None,
            "counters": self.counters,
            "dropped": self.drops.as_dict(),
        }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="labctl.supervisor")
    p.add_argument("--lab-dir", required=True)
    p.add_argument("--config", required=True)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    lab_dir = Path(args.lab_dir)
    config = json.loads(args.config)
    # What the lab writes (runs, WALs, logs, state) is its user's alone, and so is what its
    # children write: they inherit the mask.
    os.umask(0o077)
    # SIGTERM, not SIGKILL, when a foreground CLI dies: the lab shuts down as on `down`.
    die_with_parent(config.get("parent_pid"), signal.SIGTERM)
    lock = labdir.LabLock(lab_dir)
    if not lock.acquire():
        print(f"error: a lab is already running in {lab_dir}", file=sys.stderr)
        sys.exit(2)
    labdir.remove_state(lab_dir)  # whatever is there is stale: we hold the lock
    sup = Supervisor(lab_dir, config)

    def stop(signum: int, frame: Any) -> None:
        sup.running = False

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    code = 0
    try:
        sup.start()
        sup.loop()
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        sup.emit("lab.failed", reason=str(e))
        code = 3
    finally:
        sup.shutdown()
        lock.release()
    sys.exit(code)


if __name__ == "__main__":
    psutil.Process()  # fail here, not mid-run, if psutil cannot see processes
    main()
