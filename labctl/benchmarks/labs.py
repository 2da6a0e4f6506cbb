"""What every lab benchmark shares: a lab of any protocol in a temporary directory, load
generator processes over one common window, CPU and run-queue accounting, and the offline
divergence check of a run.

Every figure is measured through the fault router with real processes: labs come up with
`api.up` in foreground mode (they die with the benchmark, even if it is SIGKILLed) and
online checkers off; the divergence of a run is checked afterwards from its events.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from labctl import api
from labctl.benchmarks.procs import Procs, say
from labctl.checkers.base import protocol_orders_per_key
from labctl.checkers.divergence import DivergenceChecker
from labctl.errors import LabError
from protocols.base import events as ev


@contextlib.contextmanager
def bench_lab(
    protocol: str,
    nodes: int,
    fsync: bool,
    name: str,
    after: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    checkers: bool = False,
    extra: dict[str, Any] | None = None,
    system: dict[str, Any] | None = None,
) -> Iterator[api.Lab]:
    """A lab in a temporary dir; with `after`, once it is down, the offline divergence
    check of its run goes into after["divergence"]. `extra`: more lab config keys
    (trace_cap = 0: no message trace). With `system` (labctl.etcd's system_config), the
    replicas are that real system's members."""
    tmp = tempfile.mkdtemp(prefix=f"labctl-bench-{protocol}-")
    config = {
        "protocol": protocol,
        "nodes": nodes,
        "seed": 1,
        "options": options or {},
        "fencing": False,
        "checkers": checkers,
        "name": name,
        "fsync": fsync,
        **(extra or {}),
    }
    if system is not None:
        config["system"] = system
    lab = None
    try:
        # Foreground mode: the lab dies with this process, even if it is SIGKILLed.
        try:
            lab = api.up(Path(tmp) / "lab", config, foreground_pid=os.getpid())
        except BaseException:
            # Interrupted while it started (SIGTERM): down what got as far as running.
            with contextlib.suppress(LabError):
                api.Lab.find(Path(tmp) / "lab").down()
            raise
        yield lab
    finally:
        if lab is not None:
            try:
                lab.down()
            except Exception:  # whatever failed, the processes must go
                api.kill_group(lab.state["supervisor_pid"])
            if after is not None:
                per_key = protocol_orders_per_key(protocol)
                after["divergence"] = divergence_offline(lab.state["run_dir"], per_key)
        if os.environ.get("LABCTL_BENCH_KEEP"):
            say(f"kept {tmp} (LABCTL_BENCH_KEEP)")  # its run dir: logs, events
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def stable_leader(lab: api.Lab, timeout: float = 10.0) -> str:
    """Wait until every node runs and all agree on one leader and its term."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = lab.status()
        nodes = st["nodes"]
        if len(st["leaders"]) == 1 and all(n["state"] == "running" for n in nodes):
            leader = st["leaders"][0]
            # Every other node names it. (Not terms: a naive follower never adopts the
            # leader's term, it stays at 0; nor commit indexes: a follower's status is
            # only republished when something was applied, so an idle one's can lag.)
            if all(n["leader"] == leader for n in nodes if n["id"] != leader):
                return leader
        time.sleep(0.05)
    raise RuntimeError(f"no stable leader within {timeout:g}s: {lab.status()['nodes']}")


def loadgens(
    procs: Procs,
    lab: api.Lab,
    leader: str,
    specs: list[list[str]],
    warmup: float,
    duration: float,
    grace: float = 1.0,
    cpu: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Run one generator per spec (extra loadgen arguments) over a common window."""
    start = time.monotonic() + 0.8  # interpreter start-up of the generators
    running = []
    for i, extra in enumerate(specs):
        argv = [
            "-m",
            "labctl.benchmarks.loadgen",
            "--router",
            lab.state["router"],
            "--name",
            f"c{i}",
            "--replicas",
            ",".join(n["id"] for n in lab.status()["nodes"]),
            "--leader",
            leader,
            "--start-at",
            repr(start),
            "--warmup",
            str(warmup),
            "--duration",
            str(duration),
            "--grace",
            str(grace),
            "--parent-pid",
            str(os.getpid()),
            *extra,
        ]
        running.append(procs.spawn(argv, stdout=subprocess.PIPE, env=lab.child_env()))
    shares = None
    if cpu:
        shares = _usage(lab, running, start + warmup, duration)
    results = []
    limit = start + warmup + duration + grace + 10
    for p in running:
        try:
            out, _ = p.communicate(timeout=max(1.0, limit - time.monotonic()))
        except subprocess.TimeoutExpired:
            procs.kill(p)
            raise RuntimeError("a load generator did not finish") from None
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results, shares


def _schedstat(pid: int) -> tuple[int, int] | None:
    """Linux: (ns spent runnable but waiting for a CPU, time slices), over every thread."""
    wait = slices = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                _, w, n = f.read().split()
            wait += int(w)
            slices += int(n)
    except (OSError, ValueError):
        return None
    return wait, slices


def settle(labs: list[api.Lab], quiet_pct: float = 15.0, limit: float = 5.0) -> float:
    """Wait until the labs' processes together use under `quiet_pct` % of a core (what a
    load phase left behind: a snapshot, a backlog, a compaction), at most `limit` seconds;
    returns how long it took. A latency round that starts in another phase's tail measures
    that tail."""
    procs: list[psutil.Process] = []
    for lab in labs:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(lab.state["supervisor_pid"]))
        for p in lab.status()["processes"].values():
            if p.get("pid"):
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(p["pid"]))

    def cpu() -> float:
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    start = time.monotonic()
    while time.monotonic() - start < limit:
        c0, t0 = cpu(), time.monotonic()
        time.sleep(0.25)
        if 100 * (cpu() - c0) / (time.monotonic() - t0) < quiet_pct:
            break
    return round(time.monotonic() - start, 2)


def _usage(
    lab: api.Lab, gens: list[subprocess.Popen[bytes]], at: float, duration: float
) -> dict[str, Any]:
    """Over the window: CPU % (100 = one core) of each lab process and generator, their
    total, the whole machine's busy time and what other processes took of it; and, where
    /proc has schedstat, how long each waited for a CPU while runnable (ms per second,
    and us per time slice): the queueing delay a shared machine adds to every hop."""
    st = lab.status()
    named: dict[str, psutil.Process] = {}
    for name, p in st["processes"].items():
        if p.get("pid") and name != "broker":
            with contextlib.suppress(psutil.Error):
                named[name] = psutil.Process(p["pid"])
    with contextlib.suppress(psutil.Error):
        named["supervisor"] = psutil.Process(lab.state["supervisor_pid"])
    for i, g in enumerate(gens):
        with contextlib.suppress(psutil.Error):
            named[f"loadgen c{i}"] = psutil.Process(g.pid)
    time.sleep(max(0.0, at - time.monotonic()))

    def sample() -> dict[str, tuple[float, tuple[int, int] | None]]:
        out = {}
        for name, p in named.items():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[name] = (t.user + t.system, _schedstat(p.pid))
        return out

    m0 = psutil.cpu_times()
    c0, t0 = sample(), time.monotonic()
    time.sleep(duration * 0.9)
    c1, t1 = sample(), time.monotonic()
    m1 = psutil.cpu_times()
    span = t1 - t0
    names = [k for k in c1 if k in c0]
    out: dict[str, Any] = {k: round(100 * (c1[k][0] - c0[k][0]) / span, 1) for k in names}
    busy = sum(m1) - sum(m0) - (m1.idle - m0.idle) - (m1.iowait - m0.iowait)
    out["lab_total"] = round(sum(out[k] for k in names), 1)
    out["machine_busy"] = round(100 * busy / span, 1)  # of 100 x cpus
    out["others"] = round(out["machine_busy"] - out["lab_total"], 1)
    waits, per_slice = {}, {}
    for k in names:
        a, b = c0[k][1], c1[k][1]
        if a is None or b is None:
            continue
        waits[k] = round((b[0] - a[0]) / 1e6 / span, 1)
        per_slice[k] = round((b[0] - a[0]) / 1e3 / max(1, b[1] - a[1]), 1)
    if waits:
        out["runq_wait_ms_per_s"] = waits
        out["runq_wait_us_per_slice"] = per_slice
    return out


def applied_index(lab: api.Lab) -> int:
    """The highest applied index any node reports: how much history the lab holds."""
    return max((n.get("applied_index") or 0) for n in lab.status()["nodes"])


def sum_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("sent", "ok", "ok_total", "fail", "timeouts", "redirects", "skipped", "resent")
    out: dict[str, Any] = {k: sum(r[k] for r in results) for k in keys}
    out["per_s"] = round(sum(r["throughput"] for r in results), 1)
    out["latency_ms_p50_per_gen"] = [r["latency_ms"].get("p50") for r in results]
    out["latency_ms_p99_per_gen"] = [r["latency_ms"].get("p99") for r in results]
    return out


def divergence_offline(run_dir: str, per_key: bool = False) -> dict[str, Any]:
    """Replay the run's applied events through the divergence checker."""
    checker = DivergenceChecker(per_key=per_key)
    applied = 0
    violations = []
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return {"error": f"no {path}"}
    with path.open() as f:
        for line in f:
            if f'"{ev.APPLIED}"' not in line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("kind") != ev.APPLIED:
                continue
            applied += 1
            violations += checker.on_event(rec)
    return {
        "applied_events": applied,
        "divergent_indexes": len(violations),  # per_key: divergent keys
        "first": violations[0].detail if violations else None,
    }


def run_terminable(body: Callable[[bool], dict[str, Any]], quick: bool) -> dict[str, Any]:
    """Run a benchmark so that SIGTERM unwinds it like an exception: every `finally`
    takes its labs down and kills its generators."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return body(quick)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: labs down, procs killed


def all_running(lab: api.Lab, timeout: float = 10.0) -> list[str]:
    """Wait until every replica runs (a leaderless protocol has no leader to wait for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = lab.status()["nodes"]
        if nodes and all(n["state"] == "running" for n in nodes):
            return [n["id"] for n in nodes]
        time.sleep(0.05)
    raise RuntimeError(f"replicas not running within {timeout:g}s: {lab.status()['nodes']}")


def replica_messages(lab: api.Lab) -> int:
    """Protocol messages the replicas have sent each other so far, as they count them (the
    router counts frames, and a frame may bundle several messages to one peer). Status
    reports come at most every 50 ms: wait a little after a phase before reading them."""
    return sum(
        int((n.get("counters") or {}).get("peer_messages") or 0) for n in lab.status()["nodes"]
    )


def status_sum(lab: api.Lab, key: str) -> int:
    """The sum of a numeric status field over every replica."""
    return sum(int(n.get(key) or 0) for n in lab.status()["nodes"])


def merged_latency(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency percentiles over the samples of several generators (run with --samples)."""
    from labctl.benchmarks.loadgen import percentiles

    samples = [x for r in results for x in r.get("samples_ms", [])]
    out = percentiles(samples, (50, 99))
    out["completed_per_s"] = round(sum(r["throughput"] for r in results), 1)
    return out


def quick_main(prog: str, run: Callable[[bool], dict[str, Any]], argv: list[str] | None) -> None:
    """`python -m labctl.benchmarks.<name> [--quick]`: the benchmark's JSON on stdout."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    print(json.dumps(run(args.quick), indent=2))
