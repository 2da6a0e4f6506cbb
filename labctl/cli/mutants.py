"""`labctl mutants list`: the named bugs a lab can run with (`--mutate NAME`)."""

from __future__ import annotations

from typing import Annotated

import typer

from labctl.cli.common import Json, UnusedLabDir, print_json, protocol_class
from labctl.errors import LabError

app = typer.Typer(
    help="Named bugs the lab must catch (run one with --mutate NAME).", no_args_is_help=True
)


@app.callback()
def _mutants() -> None:
    """Named bugs the lab must catch (run one with --mutate NAME)."""
    # A callback keeps `mutants` a group: typer folds a one-command app into that command.

Mutate = Annotated[
    str | None,
    typer.Option(
        "--mutate",
        help="Run with a named bug (labctl mutants list): the checkers must catch it.",
        show_default=False,
    ),
]


@app.command("list")
def list_mutants(
    protocol: Annotated[
        str | None, typer.Option("--protocol", "-p", help="Only this protocol's (and the lab's).")
    ] = None,
    json_out: Json = False,
    lab_dir: UnusedLabDir = None,
) -> None:
    """Every mutation: the classic bug, where it is described, the violation it causes."""
    import protocols
    from labctl import mutants

    if protocol is not None:
        protocol_class(protocol)
    rows = []
    for name in [protocol] if protocol else protocols.available():
        for m in protocols.get(name).mutations:
            rows.append({"protocol": name, **mutants.describe(m)})
    for m in mutants.lab_wide():
        rows.append({"protocol": "any", **mutants.describe(m)})
    if json_out:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['protocol']:<7} {r['name']:<25} -> {', '.join(r['violations'])}")
        typer.echo(f"        {r['bug']}")
        typer.echo(f"        ({r['source']})")


def configure(config: dict, mutate: str | None) -> dict:
    """The lab config with `--mutate` resolved (labctl.mutants.configure), or a LabError."""
    from labctl import mutants

    if mutate:
        config = {**config, "mutate": mutate}
    try:
        return mutants.configure(config)
    except mutants.UnknownMutation as e:
        raise LabError(f"--mutate: {e}") from None
