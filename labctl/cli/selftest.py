"""`labctl selftest`: every named mutation caught in the simulator, the correct protocol clean."""

from __future__ import annotations

from typing import Annotated

import typer

from labctl.cli.common import Json, LabDir, print_json, protocol_class, say
from labctl.errors import LabError


def selftest(
    protocol: Annotated[
        str | None, typer.Option("--protocol", "-p", help="One protocol (default: every one).")
    ] = None,
    budget: Annotated[
        str, typer.Option("--budget", help="CPU time per mutation before giving up.")
    ] = "60s",
    mutation: Annotated[
        list[str] | None, typer.Option("--mutation", "-m", help="Only these (repeatable).")
    ] = None,
    replays: Annotated[
        int, typer.Option("--replays", help="Real-process replays of each shrunk scenario.")
    ] = 3,
    shrink_for: Annotated[str, typer.Option("--shrink-for", help="Shrinking budget.")] = "30s",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first explore run.")] = 1,
    report: Annotated[
        bool,
        typer.Option("--report/--no-report", help="A report for each real replay."),
    ] = True,
    json_out: Json = False,
    lab_dir: LabDir = None,
) -> None:
    """Catch every mutation in the simulator (exit 0: all caught).

    Each mutation is explored in the simulator until caught, shrunk, and replayed on real
    processes; then the correct protocol, which must show no violation. Exit 0 only when
    every mutation was caught and the protocol stayed clean."""
    import protocols
    from labctl import labdir, mutants
    from labctl.selftest import selftest as run
    from labctl.selftest import table
    from protocols.base import DurationError, parse_duration

    try:
        budget_s, shrink_s = parse_duration(budget), parse_duration(shrink_for)
    except DurationError as e:
        raise LabError(f"bad --budget or --shrink-for: {e}") from None
    if budget_s <= 0 or replays < 0:
        raise LabError("--budget must be positive and --replays at least 0")
    names = [n for n in protocols.available() if protocols.get(n).mutations]
    if protocol is not None:
        protocol_class(protocol)
        names = [protocol]
    if mutation:
        known = {m.name for n in names for m in mutants.catalogue(n)}
        unknown = [m for m in mutation if m not in known]
        if unknown:
            raise LabError(f"--mutation: unknown {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(known))})")  # fmt: skip
    out_dir = labdir.resolve(lab_dir) / "selftest"
    result = run(names, budget_s, seed=seed, replays=replays, shrink_s=shrink_s,
                 mutations=mutation, lab_dir=lab_dir, out_dir=out_dir, say=say,
                 report=report)  # fmt: skip
    if json_out:
        print_json(result)
    else:
        for line in table(result):
            typer.echo(line)
    raise typer.Exit(0 if result["ok"] else 1)
