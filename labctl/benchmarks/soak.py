"""Soak: each protocol at a steady load with a fault every few seconds, for a long time,
with the memory of every process and the size of the lab's record sampled as it runs.

    labctl bench soak            LABCTL_SOAK_SECONDS per protocol (default 1800: 30 min)
    labctl bench soak --quick    60 s per protocol

A lab of each protocol (default node count, fsync on, online checkers on) takes a kv
workload (4 clients, 1,000 ops/s in all, 5 keys) while faults cycle: pause a replica
for 1 s, delay its links 20 ms, 10% loss on them, isolate it, kill it and restart it, a
fault every FAULT_EVERY seconds, each healed before the next. Every SAMPLE_EVERY seconds:
RSS of the supervisor, the router, the broker, every replica and client; the run dir's
size; each WAL's size; operations completed. The result tabulates the samples and, per
series, the growth per minute over the second half of the run (what "bounded" is judged
by: memory flat, WALs flat once snapshots/checkpoints run, the run's record growing by a
constant number of bytes per operation, which is the record, not a leak).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path
from typing import Any

import psutil

from labctl import api
from labctl.benchmarks.labs import bench_lab, stable_leader
from labctl.benchmarks.procs import say
from protocols import BUILTINS

PROTOCOLS = BUILTINS
RATE = 1000
FAULT_EVERY = 4.0
SAMPLE_EVERY = 10.0
HEAL_TRIES = 10  # turns a heal is tried before the soak goes on without it
MB = 1024 * 1024


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass  # a WAL being rewritten (compaction)
    return total


def _rss(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return round(psutil.Process(pid).memory_info().rss / MB, 1)
    except psutil.Error:
        return None


def _name(p: psutil.Process) -> str:
    """A lab process's name from its command line (the supervisor's children)."""
    argv = p.cmdline()
    for flag in ("--id", "--name"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    for module, name in (("faults.router", "router"), ("nodes.broker", "broker")):
        if module in argv:
            return name
    return str(p.pid)


class Sampler:
    """Reads the processes and files directly: a supervisor busy with its checkers (or
    not answering at all) must not stop the measurement of its own memory."""

    def __init__(self, lab: api.Lab) -> None:
        self.sup = psutil.Process(lab.state["supervisor_pid"])
        self.run = Path(lab.state["run_dir"])
        self.ops = 0
        self._offset = 0

    def _count_ops(self) -> int:
        try:
            with open(self.run / "history.jsonl", "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return self.ops
        end = chunk.rfind(b"\n") + 1  # whole lines only
        self.ops += chunk[:end].count(b'"type":"ok"')
        self._offset += end
        return self.ops

    def sample(self, t0: float, lab: api.Lab) -> dict[str, Any]:
        rss = {"supervisor": _rss(self.sup.pid)}
        try:
            for child in self.sup.children():
                rss[_name(child)] = _rss(child.pid)
        except psutil.Error:
            pass
        wals = {p.parent.name: round(p.stat().st_size / MB, 2)
                for p in self.run.glob("data/*/wal.log")}  # fmt: skip
        return {
            "t": round(time.monotonic() - t0, 1),
            "ops_ok": self._count_ops(),
            "rss_mb": dict(sorted(rss.items())),
            "run_dir_mb": round(_dir_size(self.run) / MB, 2),
            "events_mb": round((self.run / "events.jsonl").stat().st_size / MB, 2),
            "wal_mb": wals,
        }


def _faults(replicas: list[str], rng: random.Random) -> list[tuple[dict[str, Any], Any]]:
    """(fault, healing spec or None) in a cycle; the target is drawn each time."""
    node = rng.choice(replicas)
    others = ",".join(r for r in replicas if r != node)
    return [
        ({"fault": "pause", "node": node, "for": "1s"}, None),
        ({"fault": "delay", "from": node, "to": others, "ms": "20"}, {"fault": "heal"}),
        ({"fault": "loss", "from": node, "to": others, "p": 0.1}, {"fault": "heal"}),
        ({"fault": "isolate", "node": node}, {"fault": "heal"}),
        ({"fault": "kill", "node": node}, {"fault": "restart", "node": node}),
    ]


def _growth(samples: list[dict[str, Any]], get: Any) -> float | None:
    """Growth per minute of one series over the second half of the run (least squares)."""
    half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2]
    pts = [(s["t"], v) for s in half if (v := get(s)) is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var
    return round(slope * 60, 3)


def one(protocol: str, seconds: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    samples: list[dict[str, Any]] = []
    faults_done = 0
    load = os.getloadavg()
    import protocols

    cls = protocols.get(protocol)
    with bench_lab(protocol, cls.default_nodes, True, "soak", checkers=True) as lab:
        replicas = lab.state["nodes"]
        if not cls.display().leaderless:  # else there is no leader to wait for
            stable_leader(lab, timeout=20.0)
        spec = {"kind": "kv", "rate": RATE, "clients": 4, "target": "leader", "keys": 5,
                "duration": seconds + 5}  # fmt: skip
        lab.call("workload", action="start", spec=spec)
        t0 = time.monotonic()
        sampler = Sampler(lab)
        unanswered = 0
        next_sample = t0
        next_fault = t0 + FAULT_EVERY
        heal: dict[str, Any] | None = None
        heal_tries = 0
        cycle: list[tuple[dict[str, Any], Any]] = []
        while (now := time.monotonic()) < t0 + seconds:
            if now >= next_sample:
                samples.append(sampler.sample(t0, lab))
                s = samples[-1]
                say(f"  {protocol} t={s['t']:.0f}s ops={s['ops_ok']} dir={s['run_dir_mb']}MB "
                    f"rss={ {k: v for k, v in s['rss_mb'].items() if not k.startswith('c')} }")
                next_sample = now + SAMPLE_EVERY
            if now >= next_fault:
                try:
                    if heal is not None:
                        heal_tries += 1
                        lab.fault(heal)
                        heal, heal_tries = None, 0
                    else:
                        if not cycle:
                            cycle = _faults(replicas, rng)
                        spec_f, undo = cycle.pop(0)
                        lab.fault(spec_f)
                        heal = undo
                        faults_done += 1
                except Exception as e:  # refused (a node mid-restart), or no answer: go on
                    say(f"  fault not applied: {e}")
                    unanswered += 1
                    # A heal that did not go through is tried again at the next turns:
                    # given up at once, it left its fault in place (a killed replica down
                    # for good, and the next kill took a second one: an overloaded EPaxos
                    # soak ran on one replica of three for its last 15 minutes).
                    if heal is not None and heal_tries >= HEAL_TRIES:
                        heal, heal_tries = None, 0
                next_fault = time.monotonic() + FAULT_EVERY / 2
            time.sleep(0.2)
        if heal is not None:
            with contextlib.suppress(Exception):
                lab.fault(heal)
        samples.append(sampler.sample(t0, lab))
    last = samples[-1]
    names = sorted({k for s in samples for k in s["rss_mb"]})
    return {
        "protocol": protocol,
        "seconds": seconds,
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "faults": faults_done,
        "faults_not_applied": unanswered,
        "ops_ok": last["ops_ok"],
        "ops_per_s": round(last["ops_ok"] / max(last["t"], 1e-9), 1),
        "growth_per_min_second_half": {
            "run_dir_mb": _growth(samples, lambda s: s["run_dir_mb"]),
            "events_mb": _growth(samples, lambda s: s["events_mb"]),
            "wal_mb": {w: _growth(samples, lambda s, w=w: s["wal_mb"].get(w))
                       for w in sorted(last["wal_mb"])},
            "rss_mb": {n: _growth(samples, lambda s, n=n: s["rss_mb"].get(n)) for n in names},
        },
        "run_dir_bytes_per_op": round(last["run_dir_mb"] * MB / max(last["ops_ok"], 1)),
        "samples": samples,
    }


def run(quick: bool = False, protocols: tuple[str, ...] = PROTOCOLS) -> dict[str, Any]:
    seconds = 60.0 if quick else float(os.environ.get("LABCTL_SOAK_SECONDS", "1800"))
    only = os.environ.get("LABCTL_SOAK_PROTOCOLS")
    if only:
        protocols = tuple(p.strip() for p in only.split(",") if p.strip())
    out = {}
    for i, p in enumerate(protocols):
        say(f"soak: {p} for {seconds:g}s at {RATE} ops/s, a fault every {FAULT_EVERY:g}s ...")
        try:
            out[p] = one(p, seconds, seed=i)
        except Exception as e:  # one protocol's failure must not lose the others' figures
            out[p] = {"protocol": p, "error": f"{type(e).__name__}: {e}"[:500]}
        r = out[p]
        say(f"soak: {p}: " + ("error " + r["error"] if "error" in r else
            f"{r['ops_per_s']} ops/s, growth/min {r['growth_per_min_second_half']}"))
    return {"rate": RATE, "fault_every_s": FAULT_EVERY, "results": out}
