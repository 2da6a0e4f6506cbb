"""Randomized chaos runs: generated scenarios that must end with zero violations.

Each run is a scenario built from a seed: a kv workload (reads by log, quorum and lease in
turn) with a quarter of orders (side effects at a fenced broker), and a schedule of faults
drawn from the whole vocabulary - partitions (one-way too), isolating the leader, pauses,
kills and restarts (some within an election timeout, some with a power loss: what was
not fsynced is gone), clock drift within the protocol's bound, fsync stalls, delay and
loss - each healed a little later, and everything healed
before the end so the final state can be judged. Used by `labctl chaos` and the slow tests.

For a byzantine-tolerant protocol (PBFT) up to f = (n-1)//3 replicas, drawn once per run,
also lie from early on, each in one of the protocol's byzantine modes, on top of the crash
faults: the checkers judge the honest replicas, which must stay safe.
"""

from __future__ import annotations

import random
from typing import Any

import protocols
from labctl.scenario.format import Scenario, Step


def random_scenario(protocol: str, nodes: int, duration: float, seed: int,
                    options: dict[str, Any] | None = None) -> Scenario:  # fmt: skip
    rng = random.Random(seed)
    replicas = [f"r{i}" for i in range(nodes)]
    if options is None:
        options = dict(protocols.get(protocol).short_run_options)
    max_drift = float((options or {}).get("max_drift", 0.05))
    steps: list[tuple[float, dict[str, Any]]] = []
    modes = protocols.get(protocol).byzantine_modes
    if modes:
        for i, node in enumerate(rng.sample(replicas, (nodes - 1) // 3)):
            steps.append((0.5 + i * 0.1, {"fault": "byzantine", "node": node,
                                          "mode": rng.choice(modes)}))  # fmt: skip
    t = 1.0
    calm = 3.0  # the last seconds are fault-free: heal, restart, let the cluster settle
    while t < duration - calm - 1.0:
        hold = rng.uniform(0.5, 2.5)
        heal_at = min(t + hold, duration - calm)
        kind = rng.choice(["partition", "oneway", "isolate", "pause", "kill", "clock",
                           "disk", "delay", "loss", "bounce", "power"])  # fmt: skip
        if kind in ("partition", "oneway"):
            shuffled = rng.sample(replicas, nodes)
            k = rng.randrange(1, nodes)
            steps.append((t, {"fault": "partition", "from": shuffled[:k], "to": shuffled[k:],
                              "oneway": kind == "oneway"}))  # fmt: skip
            steps.append((heal_at, {"fault": "heal"}))
        elif kind == "isolate":
            steps.append((t, {"fault": "isolate", "node": "leader"}))
            steps.append((heal_at, {"fault": "heal"}))
        elif kind == "pause":
            node = rng.choice(["leader", rng.choice(replicas)])
            steps.append((t, {"fault": "pause", "node": node, "for": round(hold, 3)}))
        elif kind in ("kill", "power"):
            node = rng.choice(replicas)
            kill: dict[str, Any] = {"fault": "kill", "node": node}
            if kind == "power":
                kill["power_loss"] = True  # unsynced writes are gone, as in a power cut
            steps.append((t, kill))
            steps.append((heal_at, {"fault": "restart", "node": node}))
        elif kind == "bounce":
            # Back within an election timeout: a node that forgot its vote votes again
            # while the election it voted in is still running.
            node = rng.choice(replicas)  # a name: "leader" would be another node by then
            steps.append((t, {"fault": "kill", "node": node}))
            steps.append((t + rng.uniform(0.03, 0.12), {"fault": "restart", "node": node}))
        elif kind == "clock":
            node = rng.choice(replicas)
            drift = round(rng.uniform(-max_drift, max_drift) * 0.9, 4)
            steps.append((t, {"fault": "clock", "node": node, "drift": drift}))
        elif kind == "disk":
            node = rng.choice(["leader", rng.choice(replicas)])
            steps.append((t, {"fault": "disk", "node": node, "stall": round(hold, 3)}))
        elif kind == "delay":
            a, b = rng.sample(replicas, 2)
            ms = rng.randrange(5, 80)
            steps.append((t, {"fault": "delay", "from": a, "to": b, "ms": ms, "jitter": ms // 4}))
            steps.append((heal_at, {"fault": "heal"}))
        else:
            a, b = rng.sample(replicas, 2)
            steps.append(
                (t, {"fault": "loss", "from": a, "to": b, "p": round(rng.uniform(0.1, 0.6), 2)})
            )
            steps.append((heal_at, {"fault": "heal"}))
        t += rng.uniform(0.7, 2.5)
    end = duration - calm
    steps.append((end, {"fault": "heal"}))  # every kill was followed by its restart already
    sc = Scenario(
        name=f"chaos-{seed}",
        path=f"<chaos seed {seed}>",
        description="randomized chaos run",
        protocol=protocol,
        nodes=nodes,
        seed=seed,
        duration=duration,
        options=dict(options or {}),
        fencing=True,
        workload={
            "kind": "mixed",  # kv with a share of orders: the broker's checks run too
            "rate": 120,
            "clients": 4,
            "target": "leader",
            "reads": "log,quorum,lease",
            "keys": 5,
            "retries": 3,
            "timeout": 0.25,
        },
        expect={"safe": True},
    )
    sc.steps = [Step(at=round(at, 3), fault=f, index=i) for i, (at, f) in enumerate(steps)]
    sc.steps.sort(key=lambda s: (s.at, s.index))
    return sc


def run_many(protocol: str, nodes: list[int], runs: int, duration: float, seed: int,
             lab_dir: str | None, mutate: str = "",
             report: bool = False) -> dict[str, Any]:  # fmt: skip
    """`runs` chaos runs cycling through `nodes` (with mutation `mutate`, when named);
    the aggregate verdict. With `report`, a run with a violation or a failed lab gets
    RUN/report.html (the ones worth looking at; twenty pages of nothing happening would
    only bury them)."""
    from labctl.scenario import runner
    from labctl.scenario.format import set_mutation

    results = []
    for i in range(runs):
        n = nodes[i % len(nodes)]
        sc = random_scenario(protocol, n, duration, seed + i)
        if mutate:
            set_mutation(sc, mutate)
        code, summary = runner.execute(sc, lab_dir)
        kinds = sorted({v["kind"] for v in summary["violations"]})
        results.append(
            {"seed": seed + i, "nodes": n, "exit": code, "verdict": summary["verdict"],
             "violations": kinds, "ops": summary["ops"], "faults": len(sc.steps),
             "run_dir": summary["run_dir"]}
        )  # fmt: skip
        found = ", ".join(kinds) or "none"
        runner.say(f"chaos {i + 1}/{runs}: seed {seed + i}, {n} nodes: {summary['verdict']}"
                    f" ops ok={summary['ops']['ok']} violations: {found}")  # fmt: skip
        if report and (kinds or code == 3):
            from labctl.report.hook import after_run

            page = after_run(summary["run_dir"])
            results[-1]["report"] = str(page) if page else None
    return {
        "protocol": protocol,
        "mutate": mutate or None,
        "runs": runs,
        "duration_s": duration,
        "violating_runs": sum(1 for r in results if r["violations"]),
        "failed_runs": sum(1 for r in results if r["exit"] == 3),
        "results": results,
    }
