"""`labctl bench WHAT`: measured figures (never timed tests); the code is in labctl/bench.py."""

from __future__ import annotations

from typing import Annotated

import typer

from labctl.cli.common import Json, UnusedLabDir

BENCHMARKS = ("core", "checkers", "raft", "epaxos", "pbft", "sim", "cli", "external")


def bench(
    what: Annotated[
        str, typer.Argument(metavar="WHAT", help=f"One of: {', '.join(BENCHMARKS)}.")
    ] = "core",
    json_out: Json = False,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer samples (a smoke run).")] = False,
    lab_dir: UnusedLabDir = None,
) -> None:
    """Measure: core, checkers, protocols, sim, cli, external.

    core: router hop, forwarding rate, up/down; checkers; raft, epaxos, pbft: a protocol
    under load; sim: the simulator; cli: wall time of CLI calls;
    external: what the external-node adapter adds per hop."""
    from labctl.bench import run_bench

    run_bench(what, json_out=json_out, quick=quick)
