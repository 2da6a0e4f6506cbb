"""EPaxos against Raft on 5 replicas, at 0%, 2% and 100% conflicting commands.

    labctl bench epaxos [--quick] [--json]
    python -m labctl.benchmarks.epaxos [--quick]         (prints one JSON object)

For each conflict level (the share of commands on one hot key; every other command has a
key of its own, labctl/benchmarks/loadgen.py --conflict), on a 5-replica EPaxos lab and a
5-replica Raft lab, fsync on, through the fault router:

- committed writes/s, closed loop, 5 generators x 16 in flight (EPaxos: generator i talks
  to replica i, as clients talk to their nearest replica; Raft: all to the leader);
- write latency p50/p99 at an offered 500 writes/s, open loop, 5 generators x 100/s, in
  3 rounds per protocol that alternate between the two labs (both stay up), pooled, once
  both labs are quiet again after the throughput phases (`settle_s`: how long that took);
- at 0% and 2%, a third variant in the same alternation, `epaxos_one_entry`: EPaxos with
  every generator at r0, the clients Raft's leader gets. Five command leaders on one
  2-core machine share its CPUs, and each batches a fifth of the load; with one entry
  replica the two protocols do the same per request on the same cores, and the
  comparison is of their commit paths (one round trip to a fast quorum against
  AppendEntries to every follower);
- EPaxos's fast-path ratio over both phases: instances committed on the fast path over
  all instances committed, summed over the replicas' status (fast_path, slow_path).

Then, at 0% and 2%, the latency rounds again (2 per protocol, alternating) with five
regions: replica ri and generator ci in region i, and the seed's inter-zone latency
(3 ms +-0.5, as in bench raft step 4b) on every link between two regions. EPaxos's
generators talk to their own region's replica; Raft's to the leader, in one region of
five. On loopback every hop costs the same, so a leader costs nothing; across regions it
is the extra round trip EPaxos was designed to save.

What it should show: without conflicts EPaxos commits on the fast path (one round trip to
a fast quorum) at least as fast as Raft's leader: across regions, and on loopback with the
same clients; with every command on one key, every PreAccept reply carries new
dependencies, the fast path is lost and the Accept round is paid. The divergence check
(per key) of every EPaxos run is part of the result.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import protocols
from labctl import api
from labctl.benchmarks.labs import (
    all_running,
    bench_lab,
    loadgens,
    merged_latency,
    quick_main,
    run_terminable,
    settle,
    stable_leader,
    status_sum,
    sum_results,
)
from labctl.benchmarks.procs import Procs
from labctl.benchmarks.procs import say as _say
from labctl.benchmarks.raft import SEED_JITTER_MS, SEED_LINK_MS

# What is compared: EPaxos (leaderless) against Raft (every command through its leader).
PROTOCOL, BASELINE = "epaxos", "raft"
NODES = 5
CONFLICTS = (0.0, 0.02, 1.0)
REGION_CONFLICTS = (0.0, 0.02)
ONE_ENTRY_CONFLICTS = (0.0, 0.02)
ONE_ENTRY = "epaxos_one_entry"  # a latency variant: EPaxos, every generator at one replica
OFFERED = 500.0


def _targets(lab: api.Lab, variant: str) -> list[str]:
    """Where each generator sends: Raft's to the leader; EPaxos's generator i to replica
    i, or (ONE_ENTRY) every one to the first replica."""
    if variant == ONE_ENTRY:
        return [all_running(lab)[0]] * NODES
    if not protocols.get(variant).display().leaderless:
        return [stable_leader(lab)] * NODES
    return all_running(lab)


def throughput(procs: Procs, lab: api.Lab, protocol: str, conflict: float, warm: float,
               dur: float) -> dict[str, Any]:  # fmt: skip
    """Closed loop: committed writes/s."""
    targets = _targets(lab, protocol)
    closed = ["--mode", "closed", "--inflight", "16", "--op", "put", "--timeout", "2",
              "--conflict", str(conflict)]  # fmt: skip
    specs = [["--leader", target, *closed] for target in targets]
    tp, cpu = loadgens(procs, lab, targets[0], specs, warm, dur, cpu=True)
    s = sum_results(tp)
    return {
        "committed_per_s": s["per_s"],
        "fail": s["fail"],
        "timeouts": s["timeouts"],
        "cpu_pct_lab": (cpu or {}).get("lab_total"),
    }


def latency_round(procs: Procs, lab: api.Lab, variant: str, conflict: float, warm: float,
                  dur: float) -> list[dict[str, Any]]:  # fmt: skip
    """Open loop at OFFERED writes/s: the generators' results, with their samples."""
    open_ = ["--mode", "open", "--rate", str(OFFERED / NODES), "--op", "put", "--inflight",
             "1000", "--timeout", "2", "--conflict", str(conflict), "--samples"]  # fmt: skip
    targets = _targets(lab, variant)
    lat, _ = loadgens(procs, lab, targets[0], [["--leader", t, *open_] for t in targets],
                      warm, dur)  # fmt: skip
    return lat


def regions(lab: api.Lab) -> None:
    """Five regions, replica ri and generator ci in region i: every link between two
    regions gets the seed's inter-zone latency, one-way rules so each direction is delayed
    once. EPaxos's generator i talks to its own replica; Raft's all talk to the leader,
    wherever it is (the deployment EPaxos was designed for, seed chapter 53)."""
    ids = [n["id"] for n in lab.status()["nodes"]]
    for i, r in enumerate(ids):
        others = [x for j, x in enumerate(ids) if j != i]
        others += [f"c{j}" for j in range(NODES) if j != i]
        spec = {"fault": "delay", "from": [r, f"c{i}"], "to": others, "ms": SEED_LINK_MS,
                "jitter": SEED_JITTER_MS, "oneway": True}  # fmt: skip
        lab.fault(spec)


def pooled_latency(rounds: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Percentiles over every round's samples, each round's own p50 (the noise: None for
    a round that completed nothing), and what failed: timeouts and failures per round."""
    out = merged_latency([r for rnd in rounds for r in rnd])
    out["p50_per_round"] = [merged_latency(rnd).get("p50") for rnd in rounds]
    out["timeouts_per_round"] = [sum(r["timeouts"] for r in rnd) for rnd in rounds]
    out["fail_per_round"] = [sum(r["fail"] for r in rnd) for rnd in rounds]
    return out


def run(quick: bool = False) -> dict[str, Any]:
    return run_terminable(_run, quick)


def _run(quick: bool) -> dict[str, Any]:
    t_start = time.monotonic()
    warm, dur = (0.5, 2.0) if quick else (1.0, 4.0)
    rounds = 1 if quick else 3
    result: dict[str, Any] = {
        "quick": quick,
        "nodes": NODES,
        "cpus": os.cpu_count(),
        "latency_rounds": rounds,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "levels": {},
    }
    procs = Procs()
    compared = (PROTOCOL, BASELINE)
    after: dict[str, dict[str, Any]] = {p: {} for p in compared}
    try:
        # Both labs stay up for the whole run (the idle one costs a few % of a core), so
        # their latency rounds can alternate: a drift of the shared machine's load then
        # hits both protocols alike instead of deciding the comparison.
        with contextlib.ExitStack() as stack:
            labs = {
                p: stack.enter_context(bench_lab(p, NODES, True, f"bench-{p}", after=after[p]))
                for p in compared
            }
            ep = labs[PROTOCOL]
            for conflict in CONFLICTS:
                level = result["levels"].setdefault(f"{conflict:.0%}", {})
                fast0, slow0 = status_sum(ep, "fast_path"), status_sum(ep, "slow_path")
                for p in compared:
                    _say(f"{p}, {conflict:.0%} conflicting: throughput ...")
                    level[p] = throughput(procs, labs[p], p, conflict, warm, dur)
                variants = [*compared, ONE_ENTRY] if conflict in ONE_ENTRY_CONFLICTS else compared
                samples: dict[str, list[list[dict[str, Any]]]] = {v: [] for v in variants}
                level["settle_s"] = settle(list(labs.values()))
                for i in range(rounds):
                    # Each round in another order, so no variant always follows the same one.
                    for v in variants[i % len(variants) :] + variants[: i % len(variants)]:
                        _say(f"{v}, {conflict:.0%} conflicting: latency, round {i + 1} ...")
                        lab = labs[PROTOCOL if v == ONE_ENTRY else v]
                        samples[v].append(latency_round(procs, lab, v, conflict, warm, dur))
                for p in compared:
                    level[p]["latency_500_ms"] = pooled_latency(samples[p])
                if ONE_ENTRY in samples:
                    level[PROTOCOL]["latency_500_ms_one_entry"] = pooled_latency(samples[ONE_ENTRY])
                time.sleep(0.2)  # the last status reports
                fast = status_sum(ep, "fast_path") - fast0
                slow = status_sum(ep, "slow_path") - slow0
                e = level[PROTOCOL]
                e["fast_path"], e["slow_path"] = fast, slow
                e["fast_path_ratio"] = round(fast / (fast + slow), 3) if fast + slow else None
            # Geo-distributed: the latency rounds again with the seed's links between regions.
            result["regions"] = {"link_ms": SEED_LINK_MS, "jitter_ms": SEED_JITTER_MS}
            for conflict in REGION_CONFLICTS:
                level = result["regions"].setdefault(f"{conflict:.0%}", {})
                pooled: dict[str, list[list[dict[str, Any]]]] = {p: [] for p in compared}
                for i in range(max(1, rounds - 1)):
                    for p in compared if i % 2 == 0 else compared[::-1]:
                        _say(f"{p}, {conflict:.0%} conflicting, 5 regions: latency ...")
                        regions(labs[p])
                        try:
                            pooled[p].append(latency_round(procs, labs[p], p, conflict, warm, dur))
                        finally:
                            labs[p].fault({"fault": "heal"})
                for p in compared:
                    level[p] = pooled_latency(pooled[p])
    finally:
        procs.kill_all()
    result["divergence"] = {p: after[p].get("divergence") for p in compared}
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["checks"] = checks(result)
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    return result


def checks(r: dict[str, Any]) -> dict[str, Any]:
    levels = r["levels"]
    out: dict[str, Any] = {}
    hot = levels.get("100%", {}).get(PROTOCOL, {}).get("fast_path_ratio")
    cold = levels.get("0%", {}).get(PROTOCOL, {}).get("fast_path_ratio")
    out["fast_path_lost_at_100pct"] = {
        "fast_path_ratio_0pct": cold,
        "fast_path_ratio_100pct": hot,
        "met": hot is not None and cold is not None and hot < cold,
    }
    for name in ("0%", "2%"):
        level = levels.get(name, {})
        f = level.get(BASELINE, {}).get("latency_500_ms", {}).get("p50")
        for suffix, key in (("", "latency_500_ms"), ("_one_entry", "latency_500_ms_one_entry")):
            e = level.get(PROTOCOL, {}).get(key, {}).get("p50")
            out[f"latency_p50_at_{name}_vs_raft{suffix}"] = {
                "epaxos_ms": e,
                "raft_ms": f,
                "met": e is not None and f is not None and e <= f,
            }
    for name in REGION_CONFLICTS:
        key = f"{name:.0%}"
        level = (r.get("regions") or {}).get(key, {})
        e, f = level.get(PROTOCOL, {}).get("p50"), level.get(BASELINE, {}).get("p50")
        out[f"latency_p50_at_{key}_vs_raft_5_regions"] = {
            "epaxos_ms": e,
            "raft_ms": f,
            "met": e is not None and f is not None and e <= f,
        }
    div = (r.get("divergence") or {}).get(PROTOCOL) or {}
    out["epaxos_never_divergent"] = {
        "divergent_keys": div.get("divergent_indexes"),
        "met": div.get("divergent_indexes") == 0,
    }
    return out


def main(argv: list[str] | None = None) -> None:
    quick_main("labctl.benchmarks.epaxos", run, argv)


if __name__ == "__main__":
    main()
