"""the catalogue: time for `sim explore` to catch each named mutation, median over 5 seeds

Issue 21's figure: every protocol mutation caught by `sim explore` (the same runs whatever
mutation is on: chaos and the nemeses, labctl/explore.py) within 60 s, median over five
explore seeds, and shrunk to at most 5 fault steps. For each mutation and each seed (1,
1001, 2001, 3001, 4001) this explores as `labctl sim explore --mutate NAME --seed S` does
(the protocol's test sizes in turn) until the first violation or the budget, then shrinks
the violating run once (the first seed's). The budget is CPU seconds of this process,
what an idle core would give: on a machine shared by a dozen processes `--for 60s` of
wall time is a tenth of that. Wall seconds are given too, with the load.

`python -m labctl.benchmarks.mutants [--out DIR] [PROTOCOL[:MUTATION]]...` measures some
of them; with --out each mutation's shrunk scenario is written there (without the
mutation named: tests/test_mutant_scenarios.py switches it on and off).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
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
    while time.process_time() - cpu0 < budget_s:
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
    return {"seed": seed, "runs": i, "kind": None, "wall_s": None, "cpu_s": None}


def _median(finds: list[dict[str, Any]], key: str) -> float | None:
    """The median of `key` over the finds, a miss counting as more than any catch."""
    m = statistics.median(sorted(f[key] if f["kind"] else float("inf") for f in finds))
    return None if m == float("inf") else m


def measure(protocol: str, mutation: str, seeds: tuple[int, ...] = SEEDS,
            budget_s: float = BUDGET_S, out: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One mutation over `seeds`: the median time to catch (a miss counts as the budget
    and more), and the first catch shrunk (written to `out`, when given)."""
    load = _load()
    finds = [find(protocol, mutation, s, budget_s) for s in seeds]
    caught = [f for f in finds if f["kind"]]
    row: dict[str, Any] = {
        "protocol": protocol, "mutation": mutation, "caught": f"{len(caught)} of {len(finds)}",
        "median_cpu_s": _median(finds, "cpu_s"), "median_wall_s": _median(finds, "wall_s"),
        "median_runs": statistics.median(f["runs"] if f["kind"] else 10**9 for f in finds),
        "load_before": load,
    }  # fmt: skip
    if caught:
        first = caught[0]
        small, runs = explore.shrink(first["scenario"], first["kind"], budget_s=SHRINK_S)
        row.update(kind=first["kind"], seed=first["run_seed"], nemesis=first["nemesis"],
                   fault_steps=explore.fault_steps(first["scenario"]),
                   shrunk_fault_steps=explore.fault_steps(small), shrink_runs=runs)  # fmt: skip
        if out is not None:
            small.name = f"mutant-{protocol}-{mutation}"
            small.options = {k: v for k, v in small.options.items() if k != "mutate"}
            explore.write_scenario(small, out / f"{protocol}-{mutation}.toml", (
                f"`labctl sim explore -p {protocol} --mutate {mutation} --seed "
                f"{first['run_seed']}` found {first['kind']} ({first['nemesis']}); shrunk.\n"
                "tests/test_mutant_scenarios.py runs it with and without the mutation."))
    row["finds"] = [{k: v for k, v in f.items() if k != "scenario"} for f in finds]
    row["load_after"] = _load()
    return row


def run(quick: bool = False, which: list[tuple[str, str]] | None = None,
        out: Path | None = None) -> dict[str, Any]:  # fmt: skip
    if which is None:
        which = [(p, m.name) for p in PROTOCOLS for m in protocols.get(p).mutations]
    seeds = SEEDS[:2] if quick else SEEDS
    result: dict[str, Any] = {"load_before": _load(), "budget_cpu_s": BUDGET_S,
                              "seeds": list(seeds)}  # fmt: skip
    result["rows"] = [measure(p, m, seeds, out=out) for p, m in which]
    result["load_after"] = _load()
    return result


def _which(args: list[str]) -> list[tuple[str, str]]:
    out = []
    for arg in args:
        protocol, _, mutation = arg.partition(":")
        names = [mutation] if mutation else [m.name for m in protocols.get(protocol).mutations]
        out += [(protocol, n) for n in names]
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    out_dir = None
    if args[:1] == ["--out"]:
        out_dir, args = Path(args[1]), args[2:]
    json.dump(run(which=_which(args) or None, out=out_dir), sys.stdout, indent=2)
    sys.stdout.write("\n")
