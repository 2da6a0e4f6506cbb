"""`labctl bench WHAT`: measured figures (never timed tests); the code is in labctl/bench.py."""

from __future__ import annotations

from typing import Annotated

import typer

from labctl.cli.common import Json, UnusedLabDir

BENCHMARKS = ("core", "checkers", "raft", "epaxos", "pbft", "sim", "soak", "cli", "external")


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
    from labctl.bench import run_bench

    run_bench(what, json_out=json_out, quick=quick)
