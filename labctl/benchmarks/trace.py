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

Rounds alternate the order (on/off, off/on, ...) so a machine getting busier or quieter
during the run weighs on both sides alike; the figures are medians, with every sample and
the load average before and after kept in the result. A busy machine inflates both sides,
so the ratio is the figure to read, not the absolute numbers.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from labctl.benchmarks.labs import (
    bench_lab,
    loadgens,
    quick_main,
    run_terminable,
    stable_leader,
    sum_results,
)
from labctl.benchmarks.procs import Procs
from labctl.benchmarks.procs import say as _say

BUDGET_PCT = 10.0


def _order(rounds: int) -> list[bool]:
    """True = traced; each round is a pair, the pair's order alternating."""
    out: list[bool] = []
    for i in range(rounds):
        out += [True, False] if i % 2 == 0 else [False, True]
    return out


def _pct(traced: float, untraced: float) -> float | None:
    return round(100 * (traced / untraced - 1), 1) if untraced else None


def _medians(samples: dict[bool, list[dict[str, Any]]], key: str) -> tuple[float, float]:
    """(traced, untraced) medians of one figure; samples without it are left out."""

    def med(xs: list[Any]) -> float:
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else 0.0

    return med([s[key] for s in samples[True]]), med([s[key] for s in samples[False]])


def router_rounds(rounds: int, messages: int) -> dict[str, Any]:
    from labctl.benchmarks import router

    samples: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for traced in _order(rounds):
        rate = router.run(messages=messages, pings=200, trace=traced)["rate"]
        samples[traced].append(rate)
        _say(f"  router, trace {'on ' if traced else 'off'}: {rate['msgs_per_s']:,} frames/s, "
             f"{rate['router_cpu_us_per_msg']} us CPU per frame")  # fmt: skip

    cpu_on, cpu_off = _medians(samples, "router_cpu_us_per_msg")
    rate_on, rate_off = _medians(samples, "msgs_per_s")
    return {
        "messages": messages,
        "rounds": rounds,
        "cpu_us_per_frame": {"traced": cpu_on, "untraced": cpu_off},
        "frames_per_s": {"traced": rate_on, "untraced": rate_off},
        "cpu_cost_pct": _pct(cpu_on, cpu_off),
        "rate_cost_pct": _pct(rate_off, rate_on),  # how much faster untraced is
        "samples": {"traced": samples[True], "untraced": samples[False]},
    }


def raft_rounds(rounds: int, warmup: float, duration: float) -> dict[str, Any]:
    samples: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    procs = Procs()
    try:
        for traced in _order(rounds):
            extra = {} if traced else {"trace_cap": 0}
            name = "bench-trace-on" if traced else "bench-trace-off"
            with bench_lab("raft", 3, True, name, extra=extra) as lab:
                leader = stable_leader(lab)
                spec = ["--mode", "closed", "--inflight", "64", "--op", "put", "--timeout", "2"]
                results, cpu = loadgens(procs, lab, leader, [spec] * 4, warmup, duration,
                                        cpu=True)  # fmt: skip
                assert cpu is not None
                per_s = sum_results(results)["per_s"]
                router_pct = cpu.get("router", 0.0)
                sample = {
                    "committed_per_s": per_s,
                    "router_cpu_pct": router_pct,
                    "router_cpu_pct_per_1k_per_s": round(1000 * router_pct / per_s, 2)
                    if per_s
                    else None,
                    "machine_busy_pct": cpu.get("machine_busy"),
                    "others_pct": cpu.get("others"),
                }
                samples[traced].append(sample)
                _say(f"  raft, trace {'on ' if traced else 'off'}: {per_s:,.0f} committed/s, "
                     f"router {router_pct}% of a core")  # fmt: skip
    finally:
        procs.kill_all()

    w_on, w_off = _medians(samples, "committed_per_s")
    c_on, c_off = _medians(samples, "router_cpu_pct_per_1k_per_s")
    return {
        "rounds": rounds,
        "window_s": duration,
        "committed_per_s": {"traced": w_on, "untraced": w_off},
        "router_cpu_pct_per_1k_committed_per_s": {"traced": c_on, "untraced": c_off},
        "throughput_cost_pct": _pct(w_off, w_on),
        "router_cpu_cost_pct": _pct(c_on, c_off),
        "samples": {"traced": samples[True], "untraced": samples[False]},
    }


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
