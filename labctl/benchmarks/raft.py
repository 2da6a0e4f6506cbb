"""Raft in the lab: throughput, latency, reads, failover, and PySyncObj side by side.

    labctl bench raft [--quick] [--json]
    python -m labctl.benchmarks.raft [--quick]           (prints one JSON object)

Every figure is measured through the fault router with real processes: 3-node raft labs
(`api.up` in foreground mode, so they die with this process; online checkers off) and
load generator processes (`labctl.benchmarks.loadgen`, endpoints c0..) that follow
not_leader hints. In the order run:

lab 1 (fsync on), fresh:
  3. write latency p50/p99 at an offered 500 writes/s, open loop;
  4. lease read and quorum read latency at an offered 500 reads/s each, separately;
  1. committed writes/s, closed loop, 4 generators x 64 in flight;
  3b. (full run only) 3. again, now that the lab holds the history of 1.;
  5. failover: SIGKILL of the leader (psutil) until the next write is acknowledged, for a
     client here that re-sends every 50 ms and follows hints; the killed node is
     restarted between trials (fault "restart") and a stable leader awaited; median of
     10 (5 with --quick);
lab 2 (fsync off): 3c. as 3. (the difference is what fsync costs a write), then 2. as 1.;
lab 3 (fsync off), fresh: 6. open loop at increasing offered rates (3 generators), its
  applied events replayed through the divergence checker afterwards; then PySyncObj
  0.3.17 (if importable) as 3 local processes on 127.0.0.1 (in-memory journal, so no
  fsync), each node issuing a third of the same offered rates as `sync=False` calls with
  callbacks in 10 ms ticks. Committed ops/s = successful completions inside the window /
  window, for both. PySyncObj's logs are searched for "diverged" and IndexError, and its
  replicas' order-sensitive digests (every 1,000 commands) compared.

The machine is shared and every figure moves with what else runs: the load average before
and after, and for each load phase the CPU % of every lab process, the machine's busy
time, what other processes took of it, and (Linux schedstat) how long each lab process
waited for a CPU while runnable are part of the result. Goals are in `goals`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import zmq

from labctl import api
from labctl.benchmarks.loadgen import percentiles
from labctl.checkers.divergence import DivergenceChecker
from nodes.client import Endpoint, new_request_id
from protocols.base import ClientRequest, Command
from protocols.base import events as ev

PYSYNCOBJ_VERSION = "0.3.17"
REPLICAS = ("r0", "r1", "r2")
FAILOVER_PROBE = 0.05  # the failover client's per-attempt timeout
CHECKPOINT = 1000  # PySyncObj replicas record their digest every this many commands


def _say(msg: str) -> None:
    sys.stderr.write(f"  raft: {msg}\n")
    sys.stderr.flush()


# -- processes ---------------------------------------------------------------------------


class Procs:
    """Every helper process this benchmark starts; `kill_all` always runs at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen([sys.executable, *argv], start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def kill_all(self) -> None:
        for p in self.procs:
            self.kill(p)
        self.procs = []


@contextlib.contextmanager
def raft_lab(fsync: bool, name: str, after: dict[str, Any] | None = None) -> Iterator[api.Lab]:
    """A 3-node raft lab in a temporary dir; with `after`, once it is down, the offline
    divergence check of its run goes into after["divergence"]."""
    tmp = tempfile.mkdtemp(prefix="labctl-bench-raft-")
    config = {
        "protocol": "raft",
        "nodes": 3,
        "seed": 1,
        "options": {},
        "fencing": False,
        "checkers": False,
        "name": name,
        "fsync": fsync,
    }
    lab = None
    try:
        # Foreground mode: the lab dies with this process, even if it is SIGKILLed.
        lab = api.up(Path(tmp) / "lab", config, foreground_pid=os.getpid())
        yield lab
    finally:
        if lab is not None:
            try:
                lab.down()
            except Exception:  # whatever failed, the processes must go
                api.kill_group(lab.state["supervisor_pid"])
            if after is not None:
                after["divergence"] = divergence_offline(lab.state["run_dir"])
        shutil.rmtree(tmp, ignore_errors=True)


def stable_leader(lab: api.Lab, timeout: float = 10.0) -> str:
    """Wait until every node runs and all agree on one leader and its term."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = lab.status()
        nodes = st["nodes"]
        if len(st["leaders"]) == 1 and all(n["state"] == "running" for n in nodes):
            leader = st["leaders"][0]
            term = next(n["term"] for n in nodes if n["id"] == leader)
            # (Not commit indexes: a follower's status is only republished when something
            # was applied, so an idle follower's commit_index can lag in the status doc.)
            if all(n["term"] == term for n in nodes) and all(
                n["leader"] == leader for n in nodes if n["id"] != leader
            ):
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
            ",".join(REPLICAS),
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
        running.append(procs.spawn(argv, stdout=subprocess.PIPE))
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


def _machine_busy(at: float, duration: float) -> float:
    """The whole machine's busy CPU % (of 100 x cpus) over [at, at + duration * 0.9]."""
    time.sleep(max(0.0, at - time.monotonic()))
    m0, t0 = psutil.cpu_times(), time.monotonic()
    time.sleep(duration * 0.9)
    m1, t1 = psutil.cpu_times(), time.monotonic()
    busy = sum(m1) - sum(m0) - (m1.idle - m0.idle) - (m1.iowait - m0.iowait)
    return round(100 * busy / (t1 - t0), 1)


def _applied(lab: api.Lab) -> int:
    """The highest applied index any node reports: how much history the lab holds."""
    return max((n.get("applied_index") or 0) for n in lab.status()["nodes"])


def _sum(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("sent", "ok", "ok_total", "fail", "timeouts", "redirects", "skipped", "resent")
    out: dict[str, Any] = {k: sum(r[k] for r in results) for k in keys}
    out["per_s"] = round(sum(r["throughput"] for r in results), 1)
    out["latency_ms_p50_per_gen"] = [r["latency_ms"].get("p50") for r in results]
    out["latency_ms_p99_per_gen"] = [r["latency_ms"].get("p99") for r in results]
    return out


# -- 1, 2: closed-loop throughput ----------------------------------------------------------


def throughput(
    procs: Procs,
    lab: api.Lab,
    gens: int,
    inflight: int,
    warmup: float,
    duration: float,
    cpu: bool = False,
) -> dict[str, Any]:
    leader = stable_leader(lab)
    before = _applied(lab)
    spec = ["--mode", "closed", "--inflight", str(inflight), "--op", "put", "--timeout", "2"]
    results, shares = loadgens(procs, lab, leader, [spec] * gens, warmup, duration, cpu=cpu)
    out = {
        "generators": gens,
        "inflight_each": inflight,
        "window_s": duration,
        "applied_before": before,
        **_sum(results),
    }
    if shares is not None:
        out["cpu_pct"] = shares
    return out


# -- 3, 4: open-loop latency ---------------------------------------------------------------


def open_latency(
    procs: Procs,
    lab: api.Lab,
    op: str,
    read_mode: str,
    rate: float,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    leader = stable_leader(lab)
    spec = [
        "--mode",
        "open",
        "--rate",
        str(rate),
        "--op",
        op,
        "--read-mode",
        read_mode,
        "--inflight",
        "1000",
        "--timeout",
        "2",
    ]
    (r,), usage = loadgens(procs, lab, leader, [spec], warmup, duration, cpu=True)
    return {
        "offered_per_s": rate,
        "op": op,
        "read_mode": r["read_mode"],
        "completed_per_s": r["throughput"],
        "latency_ms": r["latency_ms"],
        "sched_lag_ms": r["sched_lag_ms"],
        "timeouts": r["timeouts"],
        "fail": r["fail"],
        "skipped": r["skipped"],
        "leader": leader,
        "usage": usage,
    }


# -- 5: failover ---------------------------------------------------------------------------


def _write_until_acked(ep: Endpoint, first: str, deadline_s: float) -> tuple[float, dict]:
    """Send one write (one request id) until acknowledged; returns (monotonic ack, info)."""
    cmd = Command(
        request_id=new_request_id(ep.name), client=ep.name, op="put", key="failover", value=ep.name
    )
    request = ClientRequest(cmd)
    target = first
    suspects: set[str] = set()
    attempts = 0
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        attempts += 1
        ep.send(target, request)
        reply = ep.wait(cmd.request_id, FAILOVER_PROBE)
        if reply is not None and reply.status == "ok":
            return time.monotonic(), {"attempts": attempts, "node": reply.node, "term": reply.term}
        if reply is None:
            suspects.add(target)  # silent: dead, or cut off; try someone else
        hint = reply.leader if reply is not None else None
        if hint and hint != target and hint not in suspects:
            target = hint
            continue
        others = [n for n in REPLICAS if n != target and n not in suspects]
        if not others:
            suspects.clear()
            others = [n for n in REPLICAS if n != target]
        target = others[attempts % len(others)]
        if reply is not None:
            time.sleep(0.005)  # an election is under way; do not spin on not_leader
    raise RuntimeError(f"no write acknowledged within {deadline_s:g}s")


def failover(lab: api.Lab, trials: int) -> dict[str, Any]:
    ctx = zmq.Context.instance()
    ep = Endpoint(ctx, lab.state["router"], "c15")
    times: list[float] = []
    details = []
    try:
        for _ in range(trials):
            leader = stable_leader(lab)
            _write_until_acked(ep, leader, 5.0)  # the client's path is warm and the
            pid = next(n["pid"] for n in lab.status()["nodes"] if n["id"] == leader)
            proc = psutil.Process(pid)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            t1, info = _write_until_acked(ep, leader, 10.0)
            times.append(t1 - t0)
            details.append({"killed": leader, "s": round(t1 - t0, 3), **info})
            lab.fault({"fault": "restart", "node": leader})
    finally:
        ep.close()
    return {
        "trials": len(times),
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "client_probe_timeout_s": FAILOVER_PROBE,
        "runs": details,
    }


# -- 6: PySyncObj and labctl at the same offered rates -------------------------------------


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def pysyncobj_available() -> str | None:
    """The installed version if it is the one we compare with, else None."""
    try:
        from pysyncobj.version import VERSION  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(VERSION)


class _PsoCluster:
    """Three PySyncObj node processes (this module with --pso-node), driven over stdin."""

    def __init__(self, procs: Procs, tmp: Path) -> None:
        ports = _free_ports(3)
        addrs = [f"127.0.0.1:{p}" for p in ports]
        self.procs = procs
        self.logs = [tmp / f"pso{i}.log" for i in range(3)]
        self.nodes: list[subprocess.Popen[bytes]] = []
        for i, addr in enumerate(addrs):
            partners = [a for a in addrs if a != addr]
            with self.logs[i].open("wb") as log:
                self.nodes.append(
                    procs.spawn(
                        [
                            "-m",
                            "labctl.benchmarks.raft",
                            "--pso-node",
                            "--index",
                            str(i),
                            "--self",
                            addr,
                            "--partners",
                            ",".join(partners),
                            "--parent-pid",
                            str(os.getpid()),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                    )
                )

    def tell(self, req: dict[str, Any]) -> None:
        line = (json.dumps(req) + "\n").encode()
        for p in self.nodes:
            assert p.stdin is not None
            p.stdin.write(line)
            p.stdin.flush()

    def collect(self, what: str, timeout: float) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + timeout
        for p in self.nodes:
            assert p.stdout is not None
            ready, _, _ = select.select(
                [p.stdout.fileno()], [], [], max(0.0, deadline - time.monotonic())
            )
            if not ready:
                raise RuntimeError(f"a pysyncobj node did not answer {what!r}")
            raw = p.stdout.readline()
            if not raw:
                raise RuntimeError("a pysyncobj node exited")
            out.append(json.loads(raw))
        return out

    def ask(self, req: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        self.tell(req)
        return self.collect(req["cmd"], timeout)

    def log_problems(self) -> dict[str, Any]:
        lines: list[str] = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                for ln in path.read_text(errors="replace").splitlines():
                    low = ln.lower()
                    if "diverged" in low or "indexerror" in low or "traceback" in low:
                        lines.append(f"{path.name}: {ln.strip()[:200]}")
        return {"count": len(lines), "lines": lines[:10]}


def pysyncobj_ladder(procs: Procs, rates: list[int], warmup: float, duration: float) -> dict:
    version = pysyncobj_available()
    if version is None:
        return {"error": "pysyncobj not installed"}
    tmp = Path(tempfile.mkdtemp(prefix="labctl-bench-pso-"))
    cluster = None
    try:
        cluster = _PsoCluster(procs, tmp)
        cluster.ask({"cmd": "wait_leader"}, timeout=20)
        steps = []
        for rate in rates:
            start = time.monotonic() + 0.2
            cluster.tell(
                {
                    "cmd": "load",
                    "rate": rate / 3,
                    "start_at": start,
                    "warmup": warmup,
                    "duration": duration,
                    "grace": 1.0,
                }
            )
            machine = _machine_busy(start + warmup, duration)
            res = cluster.collect("load", timeout=warmup + duration + 20)
            ok = sum(r["ok"] for r in res)
            cpu_s = sum(r["cpu_s"] for r in res)
            sent = sum(r["sent"] for r in res)
            ok_all = sum(r["ok_total"] for r in res)
            errors: dict[str, int] = {}
            for r in res:
                for k, v in r["errors"].items():
                    errors[k] = errors.get(k, 0) + v
            steps.append(
                {
                    "offered_per_s": rate,
                    "committed_per_s": round(ok / duration, 1),
                    "success_rate": round(ok_all / sent, 3) if sent else None,
                    "sent": sent,
                    "errors": errors,
                    "cpu_pct": round(100 * cpu_s / duration, 1),
                    "cpu_us_per_committed_op": round(1e6 * cpu_s / ok, 1) if ok else None,
                    "machine_busy_pct": machine,
                    "latency_ms_p50_per_node": [r["latency_ms"].get("p50") for r in res],
                    "latency_ms_p99_per_node": [r["latency_ms"].get("p99") for r in res],
                }
            )
        agreement = _pso_agreement(cluster)
        return {
            "version": version,
            "journal": "in memory (no fsync)",
            "steps": steps,
            "max_committed_per_s": max(s["committed_per_s"] for s in steps),
            "max_offered_with_90pct_success": max(
                [s["offered_per_s"] for s in steps if (s["success_rate"] or 0) >= 0.9],
                default=None,
            ),
            "replicas": agreement,
            "log_problems": cluster.log_problems(),
        }
    finally:
        if cluster is not None:
            for p in cluster.nodes:
                procs.kill(p)
        shutil.rmtree(tmp, ignore_errors=True)


def _pso_agreement(cluster: _PsoCluster, timeout: float = 15.0) -> dict[str, Any]:
    """Wait for the replicas to apply the same number of commands, then compare digests:
    the final ones, and those every CHECKPOINT commands (so that a replica that never
    catches up is still compared on the prefix it has)."""
    deadline = time.monotonic() + timeout
    while True:
        states = cluster.ask({"cmd": "state"}, timeout=10)
        counts = {s["applied"] for s in states}
        if len(counts) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    common = set.intersection(*(set(s["checkpoints"]) for s in states))
    differ = sorted(
        (int(k) for k in common if len({s["checkpoints"][k] for s in states}) > 1),
    )
    converged = len(counts) == 1
    return {
        "converged": converged,
        "applied": [s["applied"] for s in states],
        "final_digests_equal": converged and len({s["digest"] for s in states}) == 1,
        "checkpoints_compared": len(common),
        "first_divergent_checkpoint": differ[0] if differ else None,
        "divergent_checkpoints": len(differ),
    }


def labctl_ladder(
    procs: Procs, lab: api.Lab, rates: list[int], warmup: float, duration: float
) -> dict[str, Any]:
    steps = []
    for rate in rates:
        leader = stable_leader(lab, timeout=30)
        before = _applied(lab)
        # Like PySyncObj's queue, a generous cap on what may wait; no re-sends (the
        # timeout is longer than the run), so overload is not amplified by retries.
        spec = [
            "--mode",
            "open",
            "--rate",
            str(rate / 3),
            "--op",
            "put",
            "--inflight",
            "5000",
            "--timeout",
            "30",
        ]
        results, cpu = loadgens(
            procs, lab, leader, [spec] * 3, warmup, duration, grace=3.0, cpu=True
        )
        s = _sum(results)
        assert cpu is not None
        ours = cpu["lab_total"] / 100 * duration * 0.9  # CPU seconds over 0.9 of the window
        steps.append(
            {
                "offered_per_s": rate,
                "applied_before": before,
                "committed_per_s": s["per_s"],
                "success_rate": round(s["ok_total"] / s["sent"], 3) if s["sent"] else None,
                "sent": s["sent"],
                "skipped_at_cap": s["skipped"],
                "fail": s["fail"],
                "cpu_pct": cpu["lab_total"],
                "cpu_us_per_committed_op": round(1e6 * ours / (s["ok"] * 0.9), 1)
                if s["ok"]
                else None,
                "machine_busy_pct": cpu["machine_busy"],
                "latency_ms_p50_per_gen": s["latency_ms_p50_per_gen"],
                "latency_ms_p99_per_gen": s["latency_ms_p99_per_gen"],
            }
        )
    return {
        "steps": steps,
        "max_committed_per_s": max(s["committed_per_s"] for s in steps),
        "max_offered_with_90pct_success": max(
            [s["offered_per_s"] for s in steps if (s["success_rate"] or 0) >= 0.9], default=None
        ),
    }


def divergence_offline(run_dir: str) -> dict[str, Any]:
    """Replay the run's applied events through the divergence checker."""
    checker = DivergenceChecker()
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
        "divergent_indexes": len(violations),
        "first": violations[0].detail if violations else None,
    }


# -- the whole benchmark -------------------------------------------------------------------


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: labs down, procs killed


def run(quick: bool = False) -> dict[str, Any]:
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(quick)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(quick: bool) -> dict[str, Any]:
    t_start = time.monotonic()
    warm, dur = (0.5, 2.0) if quick else (1.0, 5.0)
    lat_dur = 3.0 if quick else 6.0
    trials = 5 if quick else 10
    rates = [5000, 20000] if quick else [2000, 5000, 10000, 20000, 40000]
    ladder_dur = 2.0 if quick else 3.0
    result: dict[str, Any] = {
        "quick": quick,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    procs = Procs()
    try:
        with raft_lab(fsync=True, name="bench-raft") as lab:
            # Latency first, on a fresh lab: the throughput run leaves a large session
            # table behind, which makes every later snapshot slower (measured after it).
            _say("3. write latency at an offered 500 writes/s (fsync on) ...")
            result["write_latency_500"] = open_latency(procs, lab, "put", "log", 500, warm, lat_dur)
            _say("4. lease and quorum reads at an offered 500 reads/s each ...")
            lease = open_latency(procs, lab, "get", "lease", 500, warm, lat_dur)
            quorum = open_latency(procs, lab, "get", "quorum", 500, warm, lat_dur)
            lp99, qp99 = lease["latency_ms"].get("p99"), quorum["latency_ms"].get("p99")
            result["reads_500"] = {
                "lease": lease,
                "quorum": quorum,
                "lease_over_quorum_p99": round(lp99 / qp99, 3) if lp99 and qp99 else None,
            }
            _say("1. committed writes/s, fsync on, 4 generators x 64 in flight ...")
            result["writes_fsync_on"] = throughput(procs, lab, 4, 64, warm, dur, cpu=True)
            if not quick:
                _say("3b. write latency at 500 writes/s again, after the throughput run ...")
                aged = open_latency(procs, lab, "put", "log", 500, warm, lat_dur)
                aged["applied_before"] = max(n["applied_index"] or 0 for n in lab.status()["nodes"])
                result["write_latency_500_after_load"] = aged
            _say(f"5. failover: SIGKILL the leader until the next write is acked, x{trials} ...")
            result["failover"] = failover(lab, trials)
        with raft_lab(fsync=False, name="bench-raft-nofsync") as lab:
            _say("3c. write latency at 500 writes/s with fsync off (what fsync costs) ...")
            result["write_latency_500_fsync_off"] = open_latency(
                procs, lab, "put", "log", 500, warm, lat_dur
            )
            _say("2. committed writes/s, fsync off ...")
            result["writes_fsync_off"] = throughput(procs, lab, 4, 64, warm, dur, cpu=True)
        # A fresh lab for the ladder: PySyncObj starts empty too, and the session table the
        # runs above leave behind makes every snapshot of this one slower.
        checked: dict[str, Any] = {}
        with raft_lab(fsync=False, name="bench-raft-ladder", after=checked) as lab:
            _say(f"6. labctl raft (fsync off) at offered {rates} writes/s ...")
            labctl = labctl_ladder(procs, lab, rates, warm, ladder_dur)
        labctl["divergence"] = checked.get("divergence")
        _say(f"6. pysyncobj {PYSYNCOBJ_VERSION} at offered {rates} ops/s ...")
        pso = pysyncobj_ladder(procs, rates, warm, ladder_dur)
        result["vs_pysyncobj"] = {
            "offered_per_s": rates,
            "window_s": ladder_dur,
            "pysyncobj": pso,
            "labctl_fsync_off": labctl,
        }
    finally:
        procs.kill_all()
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["goals"] = goals(result)
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    return result


def goals(r: dict[str, Any]) -> dict[str, Any]:
    def g(goal: Any, measured: Any, met: bool | None) -> dict[str, Any]:
        return {"goal": goal, "measured": measured, "met": met}

    out: dict[str, Any] = {}
    on = r.get("writes_fsync_on", {}).get("per_s")
    out["writes_fsync_on"] = g(">= 5000/s", on, on is not None and on >= 5000)
    lat = r.get("write_latency_500", {}).get("latency_ms", {})
    p50, p99 = lat.get("p50"), lat.get("p99")
    out["write_latency_500"] = g(
        "p50 <= 2 ms, p99 <= 8 ms",
        {"p50": p50, "p99": p99},
        p50 is not None and p99 is not None and p50 <= 2 and p99 <= 8,
    )
    ratio = r.get("reads_500", {}).get("lease_over_quorum_p99")
    out["lease_vs_quorum"] = g(
        "lease p99 <= 1/4 quorum p99", ratio, ratio is not None and ratio <= 0.25
    )
    fo = r.get("failover", {}).get("median_s")
    out["failover"] = g("median <= 0.6 s", fo, fo is not None and fo <= 0.6)
    cmp_ = r.get("vs_pysyncobj", {})
    off = r.get("writes_fsync_off", {}).get("per_s")
    pso = cmp_.get("pysyncobj", {})
    lab = cmp_.get("labctl_fsync_off", {})
    pso_max = pso.get("max_committed_per_s")
    lab_max = lab.get("max_committed_per_s")
    best = max(x for x in (off, lab_max) if x is not None) if (off or lab_max) else None
    div = (lab.get("divergence") or {}).get("divergent_indexes")
    reps = pso.get("replicas") or {}
    out["fsync_off_vs_pysyncobj"] = g(
        ">= pysyncobj (same run), never divergent",
        {
            "labctl_best_per_s": best,
            "pysyncobj_best_per_s": pso_max,
            "labctl_divergent_indexes": div,
            "pysyncobj_divergent_checkpoints": reps.get("divergent_checkpoints"),
            "pysyncobj_converged": reps.get("converged"),
            "pysyncobj_diverged_log_lines": (pso.get("log_problems") or {}).get("count"),
            "pysyncobj_error": pso.get("error"),
        },
        None if pso_max is None else (best is not None and best >= pso_max and div == 0),
    )
    return out


# -- the PySyncObj node process ------------------------------------------------------------


def _pso_node(args: argparse.Namespace) -> None:
    import logging

    from nodes.process import die_with_parent

    die_with_parent(args.parent_pid)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):
        """A replicated counter with an order-sensitive digest of what it applied."""

        def __init__(self, me: str, partners: list[str]) -> None:
            super().__init__(me, partners, SyncObjConf(dynamicMembershipChange=False))
            self.applied = 0
            self.digest = 0
            self.checkpoints: dict[int, int] = {}  # applied count -> digest, every 1000

        @replicated
        def add(self, v: int) -> int:
            self.applied += 1
            self.digest = (self.digest * 1_000_003 + v) & 0xFFFFFFFFFFFFFFFF
            if self.applied % CHECKPOINT == 0:
                self.checkpoints[self.applied] = self.digest
            return self.applied

    obj = Counter(args.self_addr, args.partners.split(","))
    lock = threading.Lock()
    reason_name = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int)}
    seq = args.index * 10**12

    def reply(doc: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "wait_leader":
            while obj._getLeader() is None:  # as PySyncObj's own benchmark waits
                time.sleep(0.05)
            time.sleep(0.5)
            reply({"leader": str(obj._getLeader())})
        elif cmd == "load":
            rate, start = req["rate"], req["start_at"]
            lo = start + req["warmup"]
            hi = lo + req["duration"]
            st = {"sent": 0, "ok": 0, "ok_total": 0, "outstanding": 0}
            errors: dict[str, int] = {}
            lat: list[float] = []

            def callback(
                res: Any, err: int, t0: float, st=st, errors=errors, lat=lat, lo=lo, hi=hi
            ) -> None:
                now = time.monotonic()
                with lock:
                    st["outstanding"] -= 1
                    if err == FAIL_REASON.SUCCESS:
                        st["ok_total"] += 1
                        if lo <= now < hi:
                            st["ok"] += 1
                            lat.append((now - t0) * 1000)
                    else:
                        name = reason_name.get(err, str(err))
                        errors[name] = errors.get(name, 0) + 1

            time.sleep(max(0.0, start - time.monotonic()))
            tick = 0.01
            next_t = start
            due = 0.0
            cpu0: float | None = None
            while (now := time.monotonic()) < hi:
                if cpu0 is None and now >= lo:
                    cpu0 = time.process_time()  # every thread: the driver and SyncObj's
                due += rate * tick
                n = int(due)
                due -= n
                for _ in range(n):
                    seq += 1
                    t0 = time.monotonic()
                    with lock:
                        st["outstanding"] += 1
                        st["sent"] += 1
                    obj.add(seq, callback=lambda r, e, t0=t0: callback(r, e, t0))
                next_t += tick
                time.sleep(max(0.0, next_t - time.monotonic()))
            cpu_s = time.process_time() - (cpu0 if cpu0 is not None else time.process_time())
            end = hi + req["grace"]
            while time.monotonic() < end:
                with lock:
                    if st["outstanding"] <= 0:
                        break
                time.sleep(0.01)
            with lock:
                reply(
                    {**st, "errors": dict(errors), "latency_ms": percentiles(lat), "cpu_s": cpu_s}
                )
        elif cmd == "state":
            st = obj.getStatus()
            reply(
                {
                    "applied": obj.applied,
                    "digest": obj.digest,
                    "commit_idx": st.get("commit_idx"),
                    "last_applied": st.get("last_applied"),
                    "checkpoints": {str(k): v for k, v in obj.checkpoints.items()},
                }
            )
        elif cmd == "quit":
            break
    obj.destroy()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="labctl.benchmarks.raft")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--pso-node", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--self", dest="self_addr", default=None, help=argparse.SUPPRESS)
    p.add_argument("--partners", default="", help=argparse.SUPPRESS)
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.pso_node:
        _pso_node(args)
        return
    print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
