"""A/B rounds: one feature on and off, interleaved, for the benchmarks that price a feature
(`bench trace`: the message trace; `bench auth`: the lab's authentication).

Rounds alternate the order (on/off, off/on, ...) so a machine getting busier or quieter
during the run weighs on both sides alike; the figures are medians, with every sample kept.
A busy machine inflates both sides, so the ratio is the figure to read, not the numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from labctl.benchmarks.labs import bench_lab, loadgens, stable_leader, sum_results
from labctl.benchmarks.procs import Procs
from labctl.benchmarks.procs import say as _say


def order(rounds: int) -> list[bool]:
    """True = the feature on; each round is a pair, the pair's order alternating."""
    out: list[bool] = []
    for i in range(rounds):
        out += [True, False] if i % 2 == 0 else [False, True]
    return out


def pct(on: float, off: float) -> float | None:
    """How much larger `on` is than `off`, in percent."""
    return round(100 * (on / off - 1), 1) if off else None


def medians(samples: dict[bool, list[dict[str, Any]]], key: str) -> tuple[float, float]:
    """(on, off) medians of one figure; samples without it are left out."""

    def med(xs: list[Any]) -> float:
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else 0.0

    return med([s[key] for s in samples[True]]), med([s[key] for s in samples[False]])


def router_rounds(
    rounds: int, messages: int, run: Callable[[bool], dict[str, Any]], words: tuple[str, str]
) -> dict[str, Any]:
    """The router's forwarding run (`run(on)` returns labctl/benchmarks/router.py's
    result) with the feature on and off; `words` name the two sides in the result."""
    samples: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for on in order(rounds):
        rate = run(on)["rate"]
        samples[on].append(rate)
        _say(f"  router, {words[0] if on else words[1]}: {rate['msgs_per_s']:,} frames/s, "
             f"{rate['router_cpu_us_per_msg']} us CPU per frame")  # fmt: skip
    cpu_on, cpu_off = medians(samples, "router_cpu_us_per_msg")
    rate_on, rate_off = medians(samples, "msgs_per_s")
    yes, no = words
    return {
        "messages": messages,
        "rounds": rounds,
        "cpu_us_per_frame": {yes: cpu_on, no: cpu_off},
        "frames_per_s": {yes: rate_on, no: rate_off},
        "cpu_cost_pct": pct(cpu_on, cpu_off),
        "rate_cost_pct": pct(rate_off, rate_on),  # how much faster the feature off is
        "samples": {yes: samples[True], no: samples[False]},
    }


def raft_rounds(
    rounds: int, warmup: float, duration: float, extra: dict[bool, dict[str, Any]],
    words: tuple[str, str],
) -> dict[str, Any]:  # fmt: skip
    """`labctl bench raft`'s closed-loop throughput (3 replicas, fsync on, 4 generators x
    64 in flight) in labs with `extra[True]` and `extra[False]` as more lab config;
    committed writes/s and the router's CPU % of a core per 1,000 committed writes/s."""
    samples: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    procs = Procs()
    yes, no = words
    try:
        for on in order(rounds):
            name = f"bench-{(yes if on else no).replace(' ', '-')}"
            with bench_lab("raft", 3, True, name, extra=extra[on]) as lab:
                leader = stable_leader(lab)
                spec = ["--mode", "closed", "--inflight", "64", "--op", "put", "--timeout", "2"]
                results, cpu = loadgens(procs, lab, leader, [spec] * 4, warmup, duration,
                                        cpu=True)  # fmt: skip
                assert cpu is not None
                per_s = sum_results(results)["per_s"]
                router_pct = cpu.get("router", 0.0)
                samples[on].append({
                    "committed_per_s": per_s,
                    "router_cpu_pct": router_pct,
                    "router_cpu_pct_per_1k_per_s": round(1000 * router_pct / per_s, 2)
                    if per_s
                    else None,
                    "machine_busy_pct": cpu.get("machine_busy"),
                    "others_pct": cpu.get("others"),
                })  # fmt: skip
                _say(f"  raft, {yes if on else no}: {per_s:,.0f} committed/s, "
                     f"router {router_pct}% of a core")  # fmt: skip
    finally:
        procs.kill_all()
    w_on, w_off = medians(samples, "committed_per_s")
    c_on, c_off = medians(samples, "router_cpu_pct_per_1k_per_s")
    return {
        "rounds": rounds,
        "window_s": duration,
        "committed_per_s": {yes: w_on, no: w_off},
        "router_cpu_pct_per_1k_committed_per_s": {yes: c_on, no: c_off},
        "throughput_cost_pct": pct(w_off, w_on),
        "router_cpu_cost_pct": pct(c_on, c_off),
        "samples": {yes: samples[True], no: samples[False]},
    }
