"""`labctl bench WHAT`: measured figures (never timed tests), by labctl/benchmarks/ and
labctl/bench.py (up/down wall times)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from labctl.cli.common import Json, UnusedLabDir, print_json, say
from labctl.errors import LabError

# A benchmark named for a protocol is about that one (raft: against PySyncObj; epaxos,
# pbft: against raft); these names are benchmarks', run as `labctl.benchmarks.<name>.run`.
PER_MODULE = ("raft", "epaxos", "pbft", "sim", "soak")
BENCHMARKS = ("core", "checkers", *PER_MODULE, "cli", "external")


def bench(
    what: Annotated[
        str, typer.Argument(metavar="WHAT", help=f"One of: {', '.join(BENCHMARKS)}.")
    ] = "core",
    json_out: Json = False,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer samples (a smoke run).")] = False,
    lab_dir: UnusedLabDir = None,
) -> None:
    """Measure: core, checkers, protocols, sim, soak, cli, external.

    core: router hop (open and authenticated), forwarding rate, up/down; checkers; raft,
    epaxos, pbft: a protocol under load; sim: the simulator; soak: an idle lab's memory,
    files and event log over LABCTL_SOAK_SECONDS per protocol; cli: wall time of CLI
    calls; external: what the external-node adapter adds per hop."""
    run_bench(what, json_out=json_out, quick=quick)


def run_bench(what: str, json_out: bool = False, quick: bool = False) -> None:
    if what == "checkers":
        from labctl.benchmarks import checkers

        say("checkers: supervisor CPU with online checkers on vs off at 1,000 ops/s ...")
        result = checkers.run(seconds=3.0 if quick else 8.0)
        print_json(result) if json_out else sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    if what in PER_MODULE:
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
        raise LabError(f"unknown benchmark {what!r} (available: {', '.join(BENCHMARKS)})")
    from labctl.bench import lifecycle
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
