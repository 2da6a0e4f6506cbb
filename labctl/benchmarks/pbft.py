"""PBFT against Raft on 4 and 7 replicas: throughput, latency, messages per request.

    labctl bench pbft [--quick] [--json]
    python -m labctl.benchmarks.pbft [--quick]           (prints one JSON object)

For n = 4 (f = 1) and n = 7 (f = 2), a PBFT lab and a Raft lab of the same size, fsync
on, through the fault router:

- committed requests/s, closed loop, 4 generators x 16 in flight. PBFT clients send each
  request to every replica and accept a result once f+1 replicas sent the same reply
  (loadgen --quorum); Raft clients send to the leader;
- request latency p50/p99 at an offered 200 requests/s, open loop;
- messages per request: the protocol messages replicas sent each other during the
  throughput phase (their own count: a frame through the router may bundle several to
  one peer), over the requests completed in it (client requests and replies are not
  counted). PBFT's prepare and commit rounds are all-to-all, so this grows with n^2;
  Raft's leader talks to each follower, so it grows with n.
"""

from __future__ import annotations

import os
import time
from typing import Any

from labctl import api
from labctl.benchmarks.labs import (
    bench_lab,
    loadgens,
    merged_latency,
    quick_main,
    replica_messages,
    run_terminable,
    stable_leader,
    sum_results,
)
from labctl.benchmarks.procs import Procs
from labctl.benchmarks.procs import say as _say
from protocols import get
from protocols.base import client_quorum

# What is compared: PBFT (all-to-all, n^2 messages) against Raft (leader to each, n).
COMPARED = ("pbft", "raft")
SIZES = (4, 7)
OFFERED = 200.0
GENERATORS = 4
ROUTER_FLUSH = 0.4  # status reports (with the message counters) come every 50 ms at most


def phases(procs: Procs, lab: api.Lab, protocol: str, nodes: int, warm: float,
           dur: float) -> dict[str, Any]:  # fmt: skip
    leader = stable_leader(lab, timeout=20)
    quorum = client_quorum(get(protocol), nodes)
    extra = ["--quorum", str(quorum), "--timeout", "2"]
    if get(protocol).byzantine_tolerant:
        extra.append("--broadcast")
    time.sleep(ROUTER_FLUSH)
    messages0 = replica_messages(lab)
    closed = ["--mode", "closed", "--inflight", "16", "--op", "put", *extra]
    tp, cpu = loadgens(procs, lab, leader, [closed] * GENERATORS, warm, dur, cpu=True)
    time.sleep(ROUTER_FLUSH)
    messages = replica_messages(lab) - messages0
    s = sum_results(tp)
    completed = s["ok_total"]
    leader = stable_leader(lab, timeout=20)
    rate = str(OFFERED / GENERATORS)
    open_ = ["--mode", "open", "--rate", rate, "--op", "put", "--inflight", "1000", "--samples",
             *extra]  # fmt: skip
    lat, _ = loadgens(procs, lab, leader, [open_] * GENERATORS, warm, dur)
    return {
        "client_quorum": quorum,
        "committed_per_s": s["per_s"],
        "fail": s["fail"],
        "timeouts": s["timeouts"],
        "cpu_pct_lab": (cpu or {}).get("lab_total"),
        "latency_200_ms": merged_latency(lat),
        "replica_messages": messages,
        "requests_completed": completed,
        "messages_per_request": round(messages / completed, 1) if completed else None,
    }


def run(quick: bool = False) -> dict[str, Any]:
    return run_terminable(_run, quick)


def _run(quick: bool) -> dict[str, Any]:
    t_start = time.monotonic()
    warm, dur = (0.5, 2.0) if quick else (1.0, 4.0)
    result: dict[str, Any] = {
        "quick": quick,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "sizes": {},
    }
    procs = Procs()
    try:
        for nodes in SIZES:
            size = result["sizes"].setdefault(str(nodes), {})
            for protocol in COMPARED:
                _say(f"{protocol}, {nodes} replicas: throughput, latency, messages ...")
                after: dict[str, Any] = {}
                with bench_lab(protocol, nodes, True, f"bench-{protocol}-{nodes}", after) as lab:
                    size[protocol] = phases(procs, lab, protocol, nodes, warm, dur)
                size[protocol]["divergence"] = after.get("divergence")
    finally:
        procs.kill_all()
    result["growth"] = growth(result)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    return result


def growth(r: dict[str, Any]) -> dict[str, Any]:
    """Messages per request from 4 to 7 replicas: n^2 grows 3.06x, n grows 1.75x."""
    out: dict[str, Any] = {}
    for protocol in COMPARED:
        small = r["sizes"].get("4", {}).get(protocol, {}).get("messages_per_request")
        big = r["sizes"].get("7", {}).get(protocol, {}).get("messages_per_request")
        out[protocol] = {
            "messages_per_request_4": small,
            "messages_per_request_7": big,
            "ratio_7_over_4": round(big / small, 2) if small and big else None,
        }
    out["expected_ratio"] = {"quadratic": round(49 / 16, 2), "linear": round(7 / 4, 2)}
    return out


def main(argv: list[str] | None = None) -> None:
    quick_main("labctl.benchmarks.pbft", run, argv)


if __name__ == "__main__":
    main()
