"""`labctl bench`: measured figures, never timed tests.

`core`: the fault router's added latency per hop (p50/p99) against a direct pyzmq hop
measured in the same run, its forwarding rate, and how long `labctl up -n 3` / `-n 9` take
until every replica reports ready, and `labctl down`. `external`: what the external-node
adapter adds per hop (labctl/benchmarks/external.py).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labctl.children import python_command
from labctl.cli.common import print_json, say
from labctl.errors import LabError


def _cli(lab_dir: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [*python_command(), "-m", "labctl.cli.main", *args, "--lab-dir", str(lab_dir)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def lifecycle(nodes: int, rounds: int) -> dict[str, Any]:
    """Wall time of `labctl up -d` (returns once every replica is ready) and `labctl down`."""
    ups, downs = [], []
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        lab = Path(tmp) / "lab"
        for _ in range(rounds):
            ups.append(_cli(lab, "up", "-d", "-n", str(nodes), "-p", "naive"))
            downs.append(_cli(lab, "down"))
    return {
        "nodes": nodes,
        "up_s": _stats(ups),
        "down_s": _stats(downs),
    }


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(xs), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
        "n": len(xs),
    }


def run_bench(what: str, json_out: bool = False, quick: bool = False) -> None:
    if what == "checkers":
        from labctl.benchmarks import checkers

        say("checkers: supervisor CPU with online checkers on vs off at 1,000 ops/s ...")
        result = checkers.run(seconds=3.0 if quick else 8.0)
        print_json(result) if json_out else sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    if what == "raft":
        from labctl.benchmarks import raft

        say("raft: throughput, latency, reads, failover and PySyncObj through the router ...")
        result = raft.run(quick=quick)
        print_json(result) if json_out else sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    if what in ("epaxos", "pbft", "sim", "soak"):
        import importlib

        module = importlib.import_module(f"labctl.benchmarks.{what}")
        say(f"{what}: {module.__doc__.splitlines()[0]} ...")
        result = module.run(quick=quick)
        print_json(result) if json_out else sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    if what == "external":
        from labctl.benchmarks import external

        say("external: the adapter's added latency per hop over the router's ...")
        result = external.run(pings=1000 if quick else 5000)
        print_json(result) if json_out else sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    if what == "cli":
        from labctl.benchmarks import cli_latency

        say("cli: wall time of labctl calls (median of 10 each) ...")
        result = cli_latency.run(runs=5 if quick else 10)
        print_json(result) if json_out else sys.stdout.write(cli_latency.render(result) + "\n")
        return
    if what != "core":
        raise LabError(
            f"unknown benchmark {what!r}"
            " (available: core, checkers, raft, epaxos, pbft, sim, soak, cli, external)"
        )
    from labctl.benchmarks import router

    rounds = 2 if quick else 5
    say("router: direct hop vs through the router, and forwarding rate ...")
    messages = 5000 if quick else 50000
    result: dict[str, Any] = {"router": router.run(messages=messages),
                              "router_auth": router.run(messages=messages, authenticated=True)}
    for n in (3, 9):
        say(f"lifecycle: up/down with {n} replicas x{rounds} ...")
        result[f"lifecycle_{n}"] = lifecycle(n, rounds)
    if json_out:
        print_json(result)
    else:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
