"""the catalogue: time for `sim explore` to catch each named mutation, median over 5 seeds

Issue 21's figure: every protocol mutation caught by `sim explore` (the same runs whatever
mutation is on: chaos and the nemeses, labctl/explore.py) within 60 s, median over five
explore seeds, and shrunk to at most 5 fault steps. For each mutation and each seed (1,
1001, 2001, 3001, 4001) this explores as `labctl sim explore --mutate NAME --seed S` does
(the protocol's test sizes in turn) until the first violation or the budget, then shrinks
the violating run once (the first seed's). Wall and CPU seconds are both given, with the
load: the budget is wall time, which a loaded machine stretches.

`python -m labctl.benchmarks.mutants [PROTOCOL[:MUTATION]]...` measures some of them.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import protocols
from labctl import explore

SEEDS = (1, 1001, 2001, 3001, 4001)
BUDGET_S = 60.0
SHRINK_S = 30.0
PROTOCOLS = ("raft", "epaxos", "pbft")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def find(protocol: str, mutation: str, seed: int, budget_s: float = BUDGET_S) -> dict[str, Any]:
    """Explore from `seed` with `mutation` on until a violation or `budget_s` of wall time."""
    sizes = protocols.get(protocol).test_sizes
    wall0, cpu0 = time.perf_counter(), time.process_time()
    i = 0
    while time.perf_counter() - wall0 < budget_s:
        run_seed = seed + i
        sc, director = explore.generate(protocol, sizes[i % len(sizes)], run_seed)
        sc.options["mutate"] = mutation
        i += 1
        o = explore.check(sc, director)
        if o.kinds:
            return {"seed": seed, "run_seed": run_seed, "runs": i, "kind": o.kinds[0],
                    "nemesis": sc.description,
                    "wall_s": round(time.perf_counter() - wall0, 1),
                    "cpu_s": round(time.process_time() - cpu0, 1),
                    "scenario": o.scenario or sc}  # fmt: skip
    return {"seed": seed, "runs": i, "kind": None, "wall_s": None,
            "cpu_s": round(time.process_time() - cpu0, 1)}  # fmt: skip


def measure(protocol: str, mutation: str, seeds: tuple[int, ...] = SEEDS,
            budget_s: float = BUDGET_S) -> dict[str, Any]:  # fmt: skip
    """One mutation over `seeds`: the median time to catch (a miss counts as the budget
    and more), and the first catch shrunk."""
    load = _load()
    finds = [find(protocol, mutation, s, budget_s) for s in seeds]
    caught = [f for f in finds if f["kind"]]
    times = sorted(f["wall_s"] if f["kind"] else float("inf") for f in finds)
    median = statistics.median(times)
    row: dict[str, Any] = {
        "protocol": protocol, "mutation": mutation, "caught": f"{len(caught)} of {len(finds)}",
        "median_wall_s": None if median == float("inf") else median,
        "median_cpu_s": statistics.median(f["cpu_s"] for f in finds),
        "load_before": load,
    }  # fmt: skip
    if caught:
        first = caught[0]
        small, runs = explore.shrink(first["scenario"], first["kind"], budget_s=SHRINK_S)
        row.update(kind=first["kind"], seed=first["run_seed"], nemesis=first["nemesis"],
                   fault_steps=explore.fault_steps(first["scenario"]),
                   shrunk_fault_steps=explore.fault_steps(small), shrink_runs=runs)  # fmt: skip
    row["finds"] = [{k: v for k, v in f.items() if k != "scenario"} for f in finds]
    row["load_after"] = _load()
    return row


def run(quick: bool = False, which: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    if which is None:
        which = [(p, m.name) for p in PROTOCOLS for m in protocols.get(p).mutations]
    seeds = SEEDS[:2] if quick else SEEDS
    out: dict[str, Any] = {"load_before": _load(), "budget_s": BUDGET_S, "seeds": list(seeds)}
    out["rows"] = [measure(p, m, seeds) for p, m in which]
    out["load_after"] = _load()
    return out


def _which(args: list[str]) -> list[tuple[str, str]]:
    out = []
    for arg in args:
        protocol, _, mutation = arg.partition(":")
        names = [mutation] if mutation else [m.name for m in protocols.get(protocol).mutations]
        out += [(protocol, n) for n in names]
    return out


if __name__ == "__main__":
    json.dump(run(which=_which(sys.argv[1:]) or None), sys.stdout, indent=2)
    sys.stdout.write("\n")
