"""`labctl bench WHAT`: measured figures (never timed tests), by labctl/benchmarks/ and
labctl/bench.py (up/down wall times). `labctl bench all` runs every one but the soak into
one JSON document with the machine's load before and after, so runs can be compared."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Annotated, Any

import typer

from labctl.cli.common import Json, UnusedLabDir, print_json, say
from labctl.errors import LabError

# A benchmark named for a protocol is about that one (raft: against PySyncObj; epaxos,
# pbft: against raft); these names are benchmarks', run as `labctl.benchmarks.<name>.run`.
PER_MODULE = ("raft", "epaxos", "pbft", "sim", "soak", "trace", "auth", "etcd", "mutants")
BENCHMARKS = ("core", "checkers", *PER_MODULE, "cli", "external", "all")
# What `all` runs: everything but the soak (30 minutes per protocol; run it on its own)
# and mutants (up to 60 CPU seconds for each of 5 seeds of each mutation).
ALL = ("core", "checkers", "raft", "epaxos", "pbft", "sim", "cli", "external", "trace", "auth",
       "etcd")


def bench(
    what: Annotated[
        str, typer.Argument(metavar="WHAT", help=f"One of: {', '.join(BENCHMARKS)}.")
    ] = "core",
    json_out: Json = False,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer samples (a smoke run).")] = False,
    lab_dir: UnusedLabDir = None,
) -> None:
    """Measure the lab (WHAT: one benchmark, or all of them).

    core: router hop (open and authenticated), forwarding rate, up/down; checkers; raft,
    epaxos, pbft: a protocol under load; sim: the simulator; soak: a lab's memory, files
    and event log under load and faults over LABCTL_SOAK_SECONDS per protocol; cli: wall
    time of CLI calls; external: what the external-node adapter adds per hop; trace: the
    router and a Raft lab with and without the message trace; auth: the same with and
    without the lab's authentication; etcd: labctl's Raft and a
    real etcd side by side (root); mutants: time for sim explore to catch each named
    mutation (median of 5 seeds); all: every one but soak and mutants (etcd skipped with
    the reason without etcd or root), in one JSON document with the load before and
    after."""
    run_bench(what, json_out=json_out, quick=quick)


def run_bench(what: str, json_out: bool = False, quick: bool = False) -> None:
    if what not in BENCHMARKS:
        raise LabError(f"unknown benchmark {what!r} (available: {', '.join(BENCHMARKS)})")
    from labctl.benchmarks.labs import run_terminable

    # SIGTERM unwinds every benchmark like an exception, so each takes its labs down and
    # removes its temporary dirs (the soak and the PBFT and sim ones left them behind).
    result = run_terminable(lambda q: run_all(q) if what == "all" else measure(what, q), quick)
    if json_out:
        print_json(result)
    elif what == "cli":
        from labctl.benchmarks import cli_latency

        sys.stdout.write(cli_latency.render(result) + "\n")
    elif what == "etcd":
        from labctl.benchmarks import etcd

        sys.stdout.write(etcd.render(result) + "\n")
    else:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")


def run_all(quick: bool = False) -> dict[str, Any]:
    """Every benchmark in ALL; one that fails is reported as such, the others still run."""
    out: dict[str, Any] = {
        "quick": quick,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "results": {},
        "errors": {},
        "not_run": {
            "soak": "30 minutes per protocol: labctl bench soak",
            "mutants": "up to 60 CPU seconds per seed and mutation: labctl bench mutants",
        },
    }
    t0 = time.monotonic()
    for what in ALL:
        if what == "etcd":  # a real etcd needs its binary and root (namespaces)
            from labctl.benchmarks.etcd import unavailable

            why = unavailable()
            if why:
                out["not_run"]["etcd"] = why
                continue
        load = [round(x, 2) for x in os.getloadavg()]
        try:
            out["results"][what] = {"loadavg_before": load, **measure(what, quick)}
        except Exception as e:  # one benchmark's failure must not lose the others' figures
            out["errors"][what] = f"{type(e).__name__}: {e}"[:500]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["elapsed_s"] = round(time.monotonic() - t0, 1)
    return out


def measure(what: str, quick: bool = False) -> dict[str, Any]:
    """One benchmark's figures."""
    if what == "checkers":
        from labctl.benchmarks import checkers

        say("checkers: supervisor CPU with online checkers on vs off at 1,000 ops/s ...")
        return checkers.run(seconds=3.0 if quick else 8.0)
    if what in PER_MODULE:
        import importlib

        module = importlib.import_module(f"labctl.benchmarks.{what}")
        say(f"{what}: {module.__doc__.splitlines()[0]} ...")
        return module.run(quick=quick)
    if what == "external":
        from labctl.benchmarks import external

        say("external: the adapter's added latency per hop over the router's ...")
        return external.run(pings=1000 if quick else 5000)
    if what == "cli":
        from labctl.benchmarks import cli_latency

        say("cli: wall time of labctl calls (median of 10 each) ...")
        return cli_latency.run(runs=5 if quick else 10)
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
    return result
