"""Running a scenario: an isolated lab, the workload, the steps on schedule, a verdict.

The lab runs in its own lab dir (so it never collides with a lab the user has up) and
dies with the runner; its run record goes to the usual `<lab-dir>/runs/`. While it runs,
stderr shows progress every second and each violation the moment the supervisor's online
checkers find it. At the end: the summary (docs/scenarios.md, "[expect]") on stdout with
--json and in summary.json, and the exit code 0 (expectations met), 1 (not met), 3 (the
lab itself failed).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from labctl import api, labdir
from labctl.errors import EXIT_LAB_FAILED, EXIT_NOT_MET, EXIT_OK, LabError
from labctl.scenario.format import SAFETY_KEYS, Scenario, explore_finding
from nodes.process import decode_dict

PROGRESS_EVERY = 1.0
DRAIN_GRACE = 3.0  # after the end, how long clients may take to finish in-flight operations


Say = Callable[[str], None]  # where a scenario's progress goes


def say(text: str) -> None:
    """Progress for people: stderr, so stdout stays the summary."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Voice:
    """A `say` that can be muted and unmuted while the scenario runs (a dashboard owns the
    terminal; once it quits, progress shows on stderr again)."""

    def __init__(self, muted: bool = False) -> None:
        self.muted = muted

    def __call__(self, text: str) -> None:
        if not self.muted:
            say(text)


def run(sc: Scenario, lab_dir: str | None, json_out: bool, report: bool = True) -> int:
    """Run, print the summary (stdout with --json, a report on stderr), return the exit code.
    With `report`, RUN/report.html is written and its path printed (and in the summary)."""
    code, summary = execute(sc, lab_dir)
    finish(summary, json_out, report)
    return code


def finish(summary: dict[str, Any], json_out: bool, report: bool) -> None:
    """The verdict on stderr, the report page, the summary on stdout with --json."""
    _report(summary)
    from labctl.report.hook import after_run

    # A lab that failed left a partial record: `labctl report RUN` draws what there is, but
    # the failure is reported at once rather than after seconds of plotting.
    page = after_run(summary.get("run_dir"), report and summary.get("verdict") != "error")
    if page is not None:
        summary["report"] = str(page)
        Path(summary["run_dir"], "summary.json").write_text(json.dumps(summary, indent=2))
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")


def isolated_dir(sc: Scenario, lab_dir: str | Path | None) -> Path:
    """Where the scenario's own lab runs (`labctl dash --lab-dir` attaches to it)."""
    return labdir.resolve(lab_dir) / "scenarios" / f"{sc.name}-{os.getpid()}"


class InBackground:
    """A scenario played in a thread of this process, its lab in `isolated_dir`: how a
    dashboard shows a scenario while it runs (`labctl scenario run --dash`, the
    dashboard's scenario action through labctl.session)."""

    def __init__(self, sc: Scenario, lab_dir: str | Path | None, say: Say = say) -> None:
        self.sc = sc
        self.dir = isolated_dir(sc, lab_dir)
        self._result: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._play, args=(lab_dir, say),
                                        name=f"scenario-{sc.name}", daemon=True)  # fmt: skip
        self._thread.start()

    def _play(self, lab_dir: str | Path | None, say: Say) -> None:
        try:
            self._result["out"] = execute(self.sc, lab_dir, say)
        except BaseException as e:  # handed to join(), never lost in this thread
            self._result["crash"] = e

    def wait_for_lab(self, timeout: float = api.UP_TIMEOUT) -> Path | None:
        """The scenario's lab dir once its lab runs there; None when the scenario ended (its
        lab failed to start) or the lab did not come up within `timeout`."""
        deadline = time.monotonic() + timeout
        while labdir.read_state(self.dir) is None and self._thread.is_alive():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)  # the scenario's lab has not written its state file yet
        if self._thread.is_alive() and labdir.read_state(self.dir) is not None:
            return self.dir
        return None

    def join(self) -> tuple[int, dict[str, Any]]:
        """Wait for the end: the exit code and the contract summary, as `execute` gives
        them (what made the scenario crash is raised here)."""
        self._thread.join()
        if "crash" in self._result:
            raise self._result["crash"]
        return self._result["out"]


def execute(sc: Scenario, lab_dir: str | Path | None, say: Say = say) -> tuple[int, dict[str, Any]]:
    """Run a scenario to its end; the exit code and the contract summary. Progress and
    live violations go to `say`."""
    root = labdir.resolve(lab_dir)
    iso = isolated_dir(sc, lab_dir)
    config = {
        "protocol": sc.protocol, "nodes": sc.nodes, "seed": sc.seed, "options": sc.options,
        "fencing": sc.fencing, "name": sc.name, "runs_root": str(root / "runs"),
        "scenario": sc.path,
    }  # fmt: skip
    if sc.node is not None:
        config["node"] = sc.node  # external replicas: the user's program
    if sc.system is not None:
        config["system"] = sc.system  # a real system's members (labctl/etcd/)
    if sc.mutate:
        config["mutate"] = sc.mutate
    mutant = f", mutation {sc.mutate}" if sc.mutate else ""
    say(f"scenario {sc.name}: {sc.nodes} x {sc.protocol}{mutant}, seed {sc.seed}, "
         f"{sc.duration:g}s")  # fmt: skip
    for warning in api.config_warnings(config):
        say(f"warning: {warning}")
    found = explore_finding(sc.path)
    if found is not None:
        say(f"note: `labctl sim explore` found {found or 'this violation'} with this schedule in "
            "virtual time (`labctl sim run` on the file reproduces it every time); on real "
            "processes the timing may not reproduce, so it may not show here")  # fmt: skip
    lab: api.Lab | None = None
    failure: str | None = None
    run_dir: str | None = None
    started = time.monotonic()
    t0: float | None = None
    try:
        lab = api.up(iso, config, foreground_pid=os.getpid())
        run_dir = lab.state["run_dir"]
        t0 = _drive(sc, lab, say)
    except LabError as e:
        failure = str(e)
        say(f"error: {e}")
    finally:
        if lab is not None:
            try:
                lab.down(timeout=15)
            except LabError as e:
                failure = failure or str(e)
        shutil.rmtree(iso, ignore_errors=True)
    if run_dir is None:
        run_dir = _latest_run(root / "runs", sc)
    summary = build_summary(sc, run_dir, failure, t0)
    summary["wall_s"] = round(time.monotonic() - started, 3)
    if found is not None:
        kinds = {v["kind"] for v in summary["violations"]}
        shown = found in kinds if found else bool(kinds)
        summary["explore_finding"] = {"kind": found or None, "reproduced": shown}
        say(f"explore's {found or 'violation'} "
            + ("showed on real processes in this run" if shown else
               "did not show on real processes in this run (virtual-time timing did not "
               "reproduce; run it again to see how often it does)"))  # fmt: skip
    if run_dir:
        Path(run_dir, "summary.json").write_text(json.dumps(summary, indent=2))
    if failure:
        return EXIT_LAB_FAILED, summary
    return (EXIT_OK if summary["verdict"] == "pass" else EXIT_NOT_MET), summary


def _latest_run(runs: Path, sc: Scenario) -> str | None:
    found = sorted(runs.glob(f"*-{sc.name}-{sc.protocol}*"))
    return str(found[-1]) if found else None


def _drive(sc: Scenario, lab: api.Lab, say: Say) -> float:
    """Run the scenario's clock on a live lab; returns its zero (true time)."""
    shown: dict[str, int] = {}  # violations said so far, by kind
    sub = lab.subscriber(b"violation.")
    if sc.system is not None:
        # A real system's clock starts once it has a leader, as `labctl up` returns then:
        # etcd's first election takes its election timeout (1 to 2 s) and more under load
        # (seen: 3 s at load 19), and steps are written for a lab that is up (the etcd
        # lease scenarios pause r0, the first lock holder, at 3 s).
        lab.settle(timeout=20.0)
    try:
        t0 = time.monotonic()
        if sc.workload:
            lab.call("workload", action="start", spec={**sc.workload, "duration": sc.duration})
        steps = list(sc.steps)
        next_progress = t0 + PROGRESS_EVERY
        end = t0 + sc.duration
        while True:
            now = time.monotonic()
            while steps and t0 + steps[0].at <= now:
                step = steps.pop(0)
                try:
                    answer = lab.fault(step.fault)
                    applied = answer.get("applied") or [answer.get("describe", "")]
                    say(f"[{now - t0:6.2f}s] fault: {'; '.join(applied)}")
                except LabError as e:
                    if e.code == EXIT_LAB_FAILED:
                        raise
                    # A role that resolves to nobody right now (no leader during an
                    # election) is part of the story, not a broken scenario.
                    say(f"[{now - t0:6.2f}s] step {step.index} ({step.fault['fault']}) "
                         f"not applied: {e}")  # fmt: skip
            if now >= end:
                break
            if now >= next_progress:
                next_progress += PROGRESS_EVERY
                _progress(lab, now - t0, say)
            wake = min([end, next_progress] + ([t0 + steps[0].at] if steps else []))
            if sub.poll(max(1, int((wake - time.monotonic()) * 1000))):
                _print_violations(sub, time.monotonic() - t0, shown, say)
        # Let clients finish what is in flight, so fewer operations end as unknown.
        grace = DRAIN_GRACE
        if sc.node is not None and sc.workload:  # a timeout, the settle time, final reads
            grace += sc.workload.get("settle", 0.0) + 4 * sc.workload.get("timeout", 1.0)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            procs = lab.status()["processes"]
            if not any(p["kind"] == "client" and p["state"] == "running" for p in procs.values()):
                break
            if sub.poll(50):
                _print_violations(sub, time.monotonic() - t0, shown, say)
        lab.call("workload", action="stop")
        _print_violations(sub, time.monotonic() - t0, shown, say)
    finally:
        sub.close(0)
    return t0


SHOWN_PER_KIND = 3  # stderr shows the first few of each kind; the summary has them all


def _print_violations(sub: zmq.Socket, elapsed: float, shown: dict[str, int], say: Say) -> None:
    while True:
        try:
            frames = sub.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            v = decode_dict(frames[-1])
            kind = v["violation"]
            shown[kind] = shown.get(kind, 0) + 1
            if shown[kind] <= SHOWN_PER_KIND:
                say(f"[{elapsed:6.2f}s] VIOLATION {kind}: {v['detail']}")
            elif shown[kind] == SHOWN_PER_KIND + 1:
                say(f"[{elapsed:6.2f}s] (more {kind} violations: counted in the summary)")
        except (ValueError, KeyError, TypeError):
            continue


def _progress(lab: api.Lab, elapsed: float, say: Say) -> None:
    doc = lab.status()
    ops = doc.get("ops") or {}
    faults = "; ".join(f["describe"] for f in doc.get("faults") or []) or "none"
    leaders = ",".join(doc.get("leaders") or []) or "none"
    kinds = sorted({v["kind"] for v in doc.get("violations") or []})
    say(
        f"[{elapsed:6.2f}s] ops ok={ops.get('ok', 0)} fail={ops.get('fail', 0)} "
        f"info={ops.get('info', 0)} | leaders: {leaders} | faults: {faults}"
        + (f" | violations: {', '.join(kinds)}" if kinds else "")
    )


def _percentiles(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    xs = sorted(xs)

    def pick(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3)

    return {"p50": round(statistics.median(xs), 3), "p99": pick(0.99)}


def history_stats(run_dir: str | None) -> tuple[dict[str, int], dict[str, Any]]:
    ops = {"invoked": 0, "ok": 0, "fail": 0, "info": 0}
    lat: dict[str, list[float]] = {"write": [], "read": []}
    by_mode: dict[str, list[float]] = {}
    modes: dict[str, str] = {}
    path = Path(run_dir, "history.jsonl") if run_dir else None
    if path is None or not path.exists():
        return ops, {"write": None, "read": None}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        kind = rec.get("type")
        if kind == "invoke":
            ops["invoked"] += 1
            if rec.get("read_mode"):
                modes[rec.get("request_id")] = rec["read_mode"]
        elif kind in ops:
            ops[kind] += 1
            if kind == "ok" and isinstance(rec.get("latency_ms"), (int, float)):
                group = "read" if rec.get("op") == "get" else "write"
                lat[group].append(rec["latency_ms"])
                mode = modes.get(rec.get("request_id"))
                if group == "read" and mode:
                    by_mode.setdefault(mode, []).append(rec["latency_ms"])
    latency: dict[str, Any] = {k: _percentiles(v) for k, v in lat.items()}
    if len(by_mode) > 1 or any(m != "log" for m in by_mode):
        latency["read_by_mode"] = {m: _percentiles(v) for m, v in by_mode.items()}
    return ops, latency


def evaluate(
    expect: dict[str, Any],
    violations: list[dict[str, Any]],
    ops: dict[str, int],
    t0: float | None = None,
    events: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Each expectation and whether it was met. `t0` is the scenario's zero in true time
    (for safe_before), `events` the count of each event kind the run recorded (for seen)."""
    kinds = {v["kind"] for v in violations}
    out = []
    if "safe_before" in expect:
        limit = expect["safe_before"]
        early = [v for v in violations if t0 is None or v["t"] - t0 < limit]
        out.append({"expect": f"safe before {limit:g}s", "met": not early})
    for kind in expect.get("seen", []):
        n = (events or {}).get(kind, 0)
        out.append({"expect": f"seen {kind}", "met": n > 0, "count": n})
    for kind in expect.get("found", []):
        out.append({"expect": f"found {kind}", "met": kind in kinds})
    for kind in expect.get("absent", []):
        out.append({"expect": f"absent {kind}", "met": kind not in kinds})
    if "safe" in expect:
        met = not violations if expect["safe"] else bool(violations)
        out.append({"expect": "safe" if expect["safe"] else "unsafe", "met": met})
    if "min_ok" in expect:
        out.append({"expect": f"min_ok {expect['min_ok']}", "met": ops["ok"] >= expect["min_ok"]})
    if "max_violations" in expect:
        n = expect["max_violations"]
        out.append({"expect": f"max_violations {n}", "met": len(violations) <= n})
    if "max_info" in expect:
        n = expect["max_info"]
        out.append({"expect": f"max_info {n}", "met": ops["info"] <= n})
    return out


def event_counts(run_dir: str | None, kinds: list[str]) -> dict[str, int]:
    """How many events of each of `kinds` the run's events.jsonl holds."""
    counts = dict.fromkeys(kinds, 0)
    path = Path(run_dir, "events.jsonl") if run_dir else None
    if not kinds or path is None or not path.exists():
        return counts
    needles = {k: f'"kind":"{k}"' for k in kinds}  # cheap prefilter before parsing
    with path.open() as f:
        for line in f:
            for k, needle in needles.items():
                if needle in line.replace(" ", ""):
                    try:
                        if json.loads(line).get("kind") == k:
                            counts[k] += 1
                    except ValueError:
                        pass
    return counts


def build_summary(
    sc: Scenario, run_dir: str | None, failure: str | None, t0: float | None = None
) -> dict[str, Any]:
    lab_summary: dict[str, Any] = {}
    if run_dir and Path(run_dir, "summary.json").exists():
        try:
            lab_summary = json.loads(Path(run_dir, "summary.json").read_text())
        except ValueError:
            lab_summary = {}
    violations = [
        {"kind": v["kind"], "t": v["t"], "nodes": v["nodes"], "detail": v["detail"],
         "evidence": v.get("evidence", {})}
        for v in lab_summary.get("violations") or []
    ]  # fmt: skip
    ops, latency = history_stats(run_dir)
    expect = sc.expectations(sc.protocol)
    expectations, verdict = judge(expect, violations, ops, t0, run_dir, sc.protocol, failure)
    summary: dict[str, Any] = {
        "scenario": sc.name,
        "protocol": sc.protocol,
        "mutate": sc.mutate or None,
        "nodes": sc.nodes,
        "seed": sc.seed,
        "run_dir": run_dir,
        "verdict": verdict,
        "expectations": expectations,
        "violations": violations,
        "ops": ops,
        "latency_ms": latency,
        "elections": lab_summary.get("elections", 0),
        "workload_stats": (lab_summary.get("checkers") or {}).get("workloads") or None,
        "duration_s": sc.duration,
        # What `labctl check RUN` needs to give the same verdict from the files alone.
        "expect": expect,
        "t0": t0,
    }
    if failure:
        summary["error"] = failure
    return summary


def judge(
    expect: dict[str, Any],
    violations: list[dict[str, Any]],
    ops: dict[str, int],
    t0: float | None,
    run_dir: str | None,
    protocol: str,
    failure: str | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The expectations, each met or not, and the verdict: pass, fail, or error (the lab
    failed). The one judgement `scenario run`, `sim run` and `check RUN` share."""
    events = event_counts(run_dir, list(expect.get("seen", [])))
    expectations = evaluate(expect, violations, ops, t0, events)
    if not SAFETY_KEYS & expect.keys():  # only a protocol unsafe by design gets here
        expectations.append({"expect": f"safety not judged: {protocol} is unsafe by design",
                             "met": True})  # fmt: skip
    verdict = "error" if failure else ("pass" if all(e["met"] for e in expectations) else "fail")
    return expectations, verdict


def rejudge(run_dir: Path, violations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A run that came from a scenario, judged again from its files against that
    scenario's expectations (kept in its summary.json; from the scenario file for a run
    recorded before they were): {"scenario", "protocol", "expectations", "verdict", "exit"}.
    None for a run that did not come from a scenario (a plain `labctl up`)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    expect = summary.get("expect") if isinstance(summary, dict) else None
    protocol = summary.get("protocol") if isinstance(summary, dict) else None
    name = summary.get("scenario") if isinstance(summary, dict) else None
    t0 = summary.get("t0") if isinstance(summary, dict) else None
    if not isinstance(expect, dict):
        expect, protocol, name = _expect_from_scenario_file(run_dir)
        if expect is None:
            return None
    if not isinstance(t0, (int, float)):
        t0 = _workload_start(run_dir)
    failure = summary.get("error") if isinstance(summary, dict) else None
    ops, _ = history_stats(str(run_dir))
    expectations, verdict = judge(expect, violations, ops, t0, str(run_dir), str(protocol),
                                  failure)  # fmt: skip
    code = {"pass": EXIT_OK, "fail": EXIT_NOT_MET}.get(verdict, EXIT_LAB_FAILED)
    return {"scenario": name, "protocol": protocol, "expectations": expectations,
            "verdict": verdict, "exit": code}  # fmt: skip


def _expect_from_scenario_file(run_dir: Path) -> tuple[dict[str, Any] | None, Any, Any]:
    from labctl.scenario.format import ScenarioError, load

    try:
        config = json.loads((run_dir / "lab.json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return None, None, None
    path, protocol = config.get("scenario"), config.get("protocol")
    if not isinstance(path, str) or not isinstance(protocol, str) or not Path(path).is_file():
        return None, None, None
    try:
        sc = load(path, protocol)
    except ScenarioError:
        return None, None, None
    return sc.expectations(protocol), protocol, sc.name


def _workload_start(run_dir: Path) -> float | None:
    """The scenario's zero for a run recorded without it: its workload's start."""
    path = run_dir / "events.jsonl"
    try:
        with path.open() as f:
            for line in f:
                if '"workload.start"' in line:
                    t = json.loads(line).get("t")
                    return float(t) if isinstance(t, (int, float)) else None
    except (OSError, ValueError):
        return None
    return None


def _report(summary: dict[str, Any]) -> None:
    for e in summary["expectations"]:
        say(f"  {'met    ' if e['met'] else 'NOT MET'}  {e['expect']}")
    counts: dict[str, int] = {}
    for v in summary["violations"]:
        counts[v["kind"]] = counts.get(v["kind"], 0) + 1
        if counts[v["kind"]] == 1:
            say(f"  first {v['kind']}: {v['detail']}")
    found = ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())) or "none"
    ops = summary["ops"]
    b = (summary.get("workload_stats") or {}).get("broadcast")
    if b:  # the figures Maelstrom users compare
        lat = b["stable_latency_ms"]
        say(f"broadcast: {b['acknowledged']} acknowledged, {b['lost']} (node, message) gaps "
             f"in final reads; {b['msgs_per_op']} messages between replicas per op; visible "
             f"everywhere after median {lat['median']} ms, max {lat['max']} ms "
             f"({lat['never_stable']} never)")  # fmt: skip
    say(f"verdict: {summary['verdict']} | violations: {found} | ops ok={ops['ok']} "
         f"fail={ops['fail']} info={ops['info']} | run: {summary['run_dir']}")  # fmt: skip
