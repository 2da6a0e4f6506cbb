"""What the message trace costs: the router and a Raft lab, traced and untraced, interleaved.

    labctl bench trace [--quick] [--json]
    python -m labctl.benchmarks.trace [--quick]           (prints one JSON object)

Two figures, as the report issue states its budget (within 10% of untraced):

- router: the forwarding-rate run of labctl/benchmarks/router.py (one sender, one echo,
  50,000 frames) with and without `--trace`; the router's CPU per frame (user + system of
  the router process over the run) and frames/s.
- raft: `labctl bench raft`'s closed-loop throughput (3 replicas, fsync on, 4 generators x
  64 in flight) in a lab whose run records the trace (the lab's default, cap 500,000 frames)
  and in one with `trace_cap = 0` (no trace.bin); committed writes/s and the router's CPU %
  of a core per 1,000 committed writes/s.

Rounds are interleaved A/B pairs (labctl/benchmarks/ab.py); the figures are medians, with
every sample and the load average before and after kept in the result.
"""

from __future__ import annotations

import os
from typing import Any

from labctl.benchmarks import ab
from labctl.benchmarks.labs import quick_main, run_terminable
from labctl.benchmarks.procs import say as _say

BUDGET_PCT = 10.0
WORDS = ("traced", "untraced")


def router_rounds(rounds: int, messages: int) -> dict[str, Any]:
    from labctl.benchmarks import router

    return ab.router_rounds(
        rounds, messages, lambda on: router.run(messages=messages, pings=200, trace=on), WORDS
    )


def raft_rounds(rounds: int, warmup: float, duration: float) -> dict[str, Any]:
    # The lab's default records the trace; trace_cap = 0 writes no trace.bin.
    return ab.raft_rounds(rounds, warmup, duration, {True: {}, False: {"trace_cap": 0}}, WORDS)


def run(quick: bool = False) -> dict[str, Any]:
    return run_terminable(_run, quick)


def _run(quick: bool) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    rounds = 2 if quick else 5
    out: dict[str, Any] = {"budget_pct": BUDGET_PCT, "loadavg_before": load_before}
    _say(f"router forwarding rate, {rounds} rounds each way ...")
    out["router"] = router_rounds(rounds, 10_000 if quick else 50_000)
    raft_n = 1 if quick else 3
    _say(f"raft closed-loop throughput, {raft_n} rounds each way ...")
    out["raft"] = raft_rounds(raft_n, 1.0 if quick else 1.5, 3.0 if quick else 6.0)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    return out


def main(argv: list[str] | None = None) -> None:
    quick_main("labctl.benchmarks.trace", run, argv)


if __name__ == "__main__":
    main()
