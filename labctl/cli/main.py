"""The `labctl` entry point: the command tree and the one exit path.

Errors a user can cause are LabError: one line on stderr and the code from
labctl.errors (2 bad input / no lab, 3 the lab failed). Tracebacks only with LABCTL_DEBUG=1.
"""

from __future__ import annotations

import os
import sys

import typer

from labctl.cli import client, dash, fault, lab, mutants, scenario, selftest, sim
from labctl.errors import EXIT_LAB_FAILED, LabError

app = typer.Typer(
    name="labctl",
    help="A chaos lab for coordination protocols: real replicas, a fault router, a verdict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
lab.register(app)
app.add_typer(fault.app, name="fault")
app.add_typer(client.app, name="client")
app.add_typer(scenario.app, name="scenario")
app.add_typer(mutants.app, name="mutants")
app.add_typer(sim.app, name="sim")
app.command("check")(scenario.check)
app.command("selftest")(selftest.selftest)
app.command("chaos")(scenario.chaos)
app.command("dash")(dash.dash)


@app.command(
    "bench",
    help="Benchmarks: core (router hop, forwarding, up/down), checkers, raft, epaxos, pbft, "
    "sim, soak (LABCTL_SOAK_SECONDS per protocol).",
)
def bench(
    what: str = typer.Argument("core", help="core, checkers, raft, epaxos, pbft, sim or soak"),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    quick: bool = typer.Option(False, "--quick", help="Fewer samples (a smoke run)."),
) -> None:
    from labctl.bench import run_bench

    run_bench(what, json_out=json_out, quick=quick)


def main() -> None:
    try:
        app()
    except LabError as e:
        if os.environ.get("LABCTL_DEBUG"):
            raise
        sys.stderr.write(f"error: {e}\n")
        sys.exit(e.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug: say so in one line unless debugging
        if os.environ.get("LABCTL_DEBUG"):
            raise
        sys.stderr.write(
            f"error: internal: {type(e).__name__}: {e} (LABCTL_DEBUG=1 for a traceback)\n"
        )
        sys.exit(EXIT_LAB_FAILED)


if __name__ == "__main__":
    main()
