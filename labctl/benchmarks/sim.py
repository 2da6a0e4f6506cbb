"""the simulator: virtual s per real s, explore runs per minute, time to find a seeded bug

- speed: `labctl chaos` scenarios (every fault kind, the chaos kv workload of 120 ops/s,
  online checkers) for Raft, EPaxos and PBFT at 3 and 5 nodes (PBFT 4 and 7), and the same
  at 1,000 ops/s; virtual seconds per wall second and per CPU second of this process (the
  second is what an idle core would give; the machine's load is recorded with both);
- explore: runs per minute of `sim explore` (chaos and nemeses) on the default protocol
  (Raft);
- no-figure8: time for `sim explore --nodes 3 --mutate no-figure8` to find the seeded
  Raft bug, median over 5 explore seeds, and how small shrinking made it.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import protocols
from labctl import chaos, explore, simrun

# The built-in protocols meant to be safe, at the sizes each declares it is tested at.
SIZES = {p: protocols.get(p).test_sizes for p in protocols.BUILTINS
         if not protocols.get(p).unsafe_by_design}  # fmt: skip
# The seeded bug whose time-to-find is measured: Raft's commitment rule (paper Figure 8).
FIGURE8 = ("raft", "no-figure8")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def speed(protocol: str, nodes: int, rate: int, duration: float, seed: int) -> dict[str, Any]:
    sc = chaos.random_scenario(protocol, nodes, duration, seed)
    assert sc.workload is not None
    sc.workload["rate"] = rate
    wall0, cpu0 = time.perf_counter(), time.process_time()
    sink = simrun.CheckingSink(sc)
    lab, failure = simrun.simulate(sc, sink)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "protocol": protocol, "nodes": nodes, "rate": rate, "faults": len(sc.steps),
        "virtual_s": round(lab.now, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "per_wall_s": round(lab.now / wall, 1), "per_cpu_s": round(lab.now / cpu, 1),
        "ops_ok": lab.ops["ok"], "violations": len(sink.violations), "failure": failure,
    }  # fmt: skip


def explore_rate(protocol: str, seconds: float, seed: int) -> dict[str, Any]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    runs = virtual = 0.0
    violating = 0
    i = 0
    while time.perf_counter() - wall0 < seconds:
        sizes = protocols.get(protocol).test_sizes
        n = sizes[i % len(sizes)]
        sc, director = explore.generate(protocol, n, seed + i)
        o = explore.check(sc, director)
        runs += 1
        virtual += o.virtual_s
        violating += bool(o.kinds)
        i += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"protocol": protocol, "runs": int(runs), "violating": violating,
            "runs_per_minute_wall": round(runs * 60 / wall, 1),
            "runs_per_minute_cpu": round(runs * 60 / cpu, 1),
            "virtual_per_wall_s": round(virtual / wall, 1)}  # fmt: skip


def find_figure8(seed: int, max_runs: int = 200) -> dict[str, Any]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(max_runs):
        sc, director = explore.generate(FIGURE8[0], 3, seed + i)
        sc.options["mutate"] = FIGURE8[1]
        o = explore.check(sc, director)
        if o.kinds:
            found_wall, found_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            small, shrink_runs = explore.shrink(o.scenario or sc, o.kinds[0], budget_s=60)
            return {"seed": seed, "runs": i + 1, "kind": o.kinds[0],
                    "found_wall_s": round(found_wall, 1), "found_cpu_s": round(found_cpu, 1),
                    "fault_steps": explore.fault_steps(o.scenario or sc),
                    "shrunk_fault_steps": explore.fault_steps(small),
                    "shrink_runs": shrink_runs}  # fmt: skip
    return {"seed": seed, "runs": max_runs, "kind": None}


def run(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"load_before": _load()}
    duration = 10.0 if quick else 30.0
    rows = []
    for protocol, sizes in SIZES.items():
        for n in sizes[:1] if quick else sizes:
            for rate in (120, 1000):
                rows.append(speed(protocol, n, rate, duration, seed=7))
    out["speed"] = rows
    out["explore"] = explore_rate(protocols.DEFAULT, 20.0 if quick else 60.0, seed=1000)
    seeds = (1, 1001) if quick else (1, 1001, 2001, 3001, 4001)
    finds = [find_figure8(s) for s in seeds]
    found = [f for f in finds if f["kind"]]
    def median(key: str) -> float | None:
        return statistics.median(f[key] for f in found) if found else None

    out["no_figure8"] = {
        "runs": finds,
        "found": f"{len(found)} of {len(finds)}",
        "median_found_wall_s": median("found_wall_s"),
        "median_found_cpu_s": median("found_cpu_s"),
        "median_runs": median("runs"),
        "max_shrunk_fault_steps": max((f["shrunk_fault_steps"] for f in found), default=None),
    }
    out["load_after"] = _load()
    return out
