"""`labctl sim run`: a scenario in virtual time, judged and recorded as `scenario run` does.

This is where the simulator (sim/, which knows nothing of labctl) meets the lab: a
`Scenario` becomes a `sim.Plan`, the run's records go through the same `CheckerSet` the
supervisor feeds (online, record by record; violations become `violation` events in the
stream, as live) and into a run directory of the usual shape (lab.json marked
`"simulated": true`, events.jsonl, history.jsonl, summary.json, and trace.bin, the message
trace the lab's router writes), so `labctl check RUN`, `labctl report RUN` (its space-time
diagram included) and everything built on run records work unchanged. The verdict, the
expectations and the exit codes are `scenario run`'s (labctl/scenario/runner.py's
`build_summary`).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from faults import trace as tr
from labctl import labdir
from labctl.checkers import CheckerConfig, CheckerSet, Violation
from labctl.errors import EXIT_LAB_FAILED, EXIT_NOT_MET, EXIT_OK
from labctl.rundir import RunDir
from labctl.scenario import runner
from labctl.scenario.format import Scenario
from sim import CPU, Plan, SimLab

SHOWN_PER_KIND = runner.SHOWN_PER_KIND
LIN_MIN_GAP = 1.0  # virtual s between online linearizability passes, at least
LIN_GAP_SHARE = 0.25  # ... and at least this share of the virtual time elapsed
SIM_LIN_STEPS = 20_000_000  # steps a key's search may take at the end of a simulated run


def plan_of(sc: Scenario) -> Plan:
    from labctl import mutants

    target = mutants.resolve(sc.protocol, sc.mutate).target if sc.mutate else ""
    return Plan(
        protocol=sc.protocol, nodes=sc.nodes, seed=sc.seed, duration=sc.duration,
        options=dict(sc.options), fencing=sc.fencing,
        workload=dict(sc.workload) if sc.workload else None,
        steps=[(s.at, dict(s.fault)) for s in sc.steps], mutate=sc.mutate, mutate_target=target,
    )  # fmt: skip


class CheckingSink:
    """The supervisor's part: every record to the checkers (and to the run directory when
    there is one), each violation into the stream the moment its evidence completes."""

    def __init__(self, sc: Scenario, run: RunDir | None = None, talk: bool = False) -> None:
        # No wall clock in a simulated run's verdicts: the search is bounded in steps
        # (SIM_LIN_STEPS a key at the end, about the real lab's 20 s) and memory only.
        # The records are built here, not decoded: a request id or a node's name is one
        # string object in every record that names it, so the checkers need not intern
        # them (runner._SHARED); the workload's keys are made per operation, interned below.
        self.checkers = CheckerSet(CheckerConfig.from_lab(
            {"protocol": sc.protocol},
            lin_wall_clock=False, lin_seconds=None, lin_budget=SIM_LIN_STEPS,
        ), share=False)  # fmt: skip
        self.run = run
        self.talk = talk
        self.violations: list[dict[str, Any]] = []
        self.shown: dict[str, int] = {}
        self.now = 0.0
        self.next_lin = 0.0  # virtual time of the next linearizability pass

    def event(self, rec: dict[str, Any]) -> None:
        self.now = rec["t"]
        if self.run is not None:
            self.run.event(rec)
        checkers = self.checkers
        if not checkers.finished and rec["kind"] != "violation":
            found = checkers.on_event(rec)
            if found:
                self._report(found)

    def history(self, rec: dict[str, Any]) -> None:
        key = rec.get("key")
        if key.__class__ is str:
            rec["key"] = sys.intern(key)  # type: ignore[arg-type]
        if self.run is not None:
            self.run.history(rec)
        checkers = self.checkers
        if not checkers.finished:
            found = checkers.on_history(rec)
            if found:
                self._report(found)

    def check(self, t: float) -> None:
        """The sim's tick (every virtual second): the linearizability search, spaced as
        the run grows. Each pass searches the changed keys' whole history, so a pass a
        second would make a run's cost grow with the square of its length; spacing passes
        a quarter of the elapsed time apart (at least a second) keeps a violation's report
        within that of its evidence and the total near linear. The supervisor spaces its
        passes by their wall-clock cost; a simulated run cannot look at the clock."""
        self.now = t
        if t + 1e-9 < self.next_lin:
            return
        self.next_lin = t + max(LIN_MIN_GAP, t * LIN_GAP_SHARE)
        self._report(self.checkers.check_online())

    def say(self, text: str) -> None:
        if self.talk:
            runner.say(text)

    def finish(self) -> None:
        self._report(self.checkers.finish())
        self.event({"t": self.now, "src": "supervisor", "kind": "lab.stopped"})

    def _report(self, found: list[Violation]) -> None:
        for v in found:
            doc = v.to_dict()
            self.violations.append(doc)
            self.event({"t": self.now, "src": "supervisor", "kind": "violation",
                        "violation": v.kind, "at": v.t, "nodes": v.nodes, "detail": v.detail,
                        "evidence": v.evidence})  # fmt: skip
            if self.talk:
                n = self.shown[v.kind] = self.shown.get(v.kind, 0) + 1
                if n <= SHOWN_PER_KIND:
                    runner.say(f"[{v.t:6.2f}s] VIOLATION {v.kind}: {v.detail}")
                elif n == SHOWN_PER_KIND + 1:
                    runner.say(f"[{v.t:6.2f}s] (more {v.kind} violations: counted in the "
                                "summary)")  # fmt: skip


def simulate(sc: Scenario, sink: CheckingSink, cpu: CPU | None = None, director: Any = None,
             trace: tr.TraceWriter | None = None,
             status: bool = False) -> tuple[SimLab, str | None]:  # fmt: skip
    """Run the scenario's plan into `sink`; the lab, and the failure if the run broke (a
    protocol that raised: in the lab its replica process would have died). A director
    (labctl/explore.py) sits in front of the sink and adds faults as the run goes; a
    trace writer gets every message. `status`: the replicas' node.status telemetry, for
    a run record's readers (report, dash); no checker judges it, and the run is the same
    without it, so runs that keep no record (explore, bench) leave it off."""
    lab = SimLab(plan_of(sc), director or sink, cpu, trace, status)
    if director is not None:
        director.attach(lab)
    failure = None
    try:
        lab.run()
    except Exception as e:  # a bug in a protocol or the runtime: the run's outcome, said
        failure = f"simulation failed at t={lab.now:.6f}: {type(e).__name__}: {e}"
        sink.say(traceback.format_exc().rstrip())
    sink.finish()
    return lab, failure


def execute(sc: Scenario, lab_dir: str | None, talk: bool = True,
            cpu: CPU | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """Run a scenario in virtual time, recorded in `<lab-dir>/runs/`; the exit code and
    the contract summary (`scenario run`'s, marked simulated, with the speed)."""
    root = labdir.resolve(lab_dir)
    if talk:
        runner.say(f"sim {sc.name}: {sc.nodes} x {sc.protocol}, seed {sc.seed}, "
                    f"{sc.duration:g}s of virtual time")  # fmt: skip
    run = RunDir(root / "runs", sc.name, sc.protocol)
    cpu = cpu or CPU()
    config = {
        "protocol": sc.protocol, "nodes": sc.nodes, "seed": sc.seed, "options": sc.options,
        "fencing": sc.fencing, "name": sc.name, "scenario": sc.path, "simulated": True,
        **({"mutate": sc.mutate} if sc.mutate else {}),
        "sim": {"latency": list(cpu.latency), "service_time": cpu.service_time,
                "fsync_time": cpu.fsync_time},
        "replicas": [f"r{i}" for i in range(sc.nodes)],
    }  # fmt: skip
    run.write_lab(config)
    sink = CheckingSink(sc, run, talk)
    trace = tr.TraceWriter(tr.trace_path(run.path), tr.DEFAULT_CAP)
    started = time.perf_counter()
    try:
        lab, failure = simulate(sc, sink, cpu, trace=trace, status=True)
    finally:
        trace.close()
    wall = time.perf_counter() - started
    lab_summary = {**lab.summary(), "run_dir": str(run.path), "violations": sink.violations,
                   "checkers": sink.checkers.summary(), "simulated": True}  # fmt: skip
    run.write_summary(lab_summary)
    run.close()
    summary = runner.build_summary(sc, str(run.path), failure, 0.0)
    summary["simulated"] = True
    summary["wall_s"] = round(wall, 3)
    summary["virtual_s"] = round(lab.now, 3)
    summary["speed"] = round(lab.now / wall, 1) if wall > 0 else None
    Path(run.path, "summary.json").write_text(json.dumps(summary, indent=2))
    if failure:
        return EXIT_LAB_FAILED, summary
    return (EXIT_OK if summary["verdict"] == "pass" else EXIT_NOT_MET), summary


def run(sc: Scenario, lab_dir: str | None, json_out: bool, report: bool = True) -> int:
    code, summary = execute(sc, lab_dir)
    runner.say(f"simulated {summary['virtual_s']:g}s in {summary['wall_s']:g}s "
                f"({summary['speed']}x real time)")  # fmt: skip
    runner.finish(summary, json_out, report)  # the verdict, the report, --json
    return code
